"""``/api/v1/analytics/...``, and the same views at the unversioned ``/api/analytics/...``
(``legacy_urlpatterns``, mounted by ``orchestra/urls.py``; left out of the schema, which
documents each view once)."""

from typing import Any

from django.urls import URLPattern, path

from . import views

VIEWS = {
    "realtime": views.RealtimeApi,
    "usage": views.UsageApi,
    "costs": views.CostsApi,
    "performance": views.PerformanceApi,
    "export": views.ExportApi,
}


def _urls(name: str, **initkwargs: Any) -> list[URLPattern]:
    return [
        path(f"analytics/{part}", view.as_view(**initkwargs), name=f"{name}{part}")
        for part, view in VIEWS.items()
    ]


urlpatterns = _urls("analytics-")
legacy_urlpatterns = _urls("analytics-legacy-", schema=None)
