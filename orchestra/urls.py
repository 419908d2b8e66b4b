from django.conf import settings
from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularSwaggerSplitView

from apps.analytics.api import urls as analytics_api_urls
from apps.core.api.views import SchemaApi
from apps.github.api import urls as github_api_urls


class FaviconView(RedirectView):
    """Browsers ask for /favicon.ico whatever the page links; without an answer each page load
    logged a ``Not Found`` warning (and reached the live log)."""

    permanent = True

    def get_redirect_url(self, *args: object, **kwargs: object) -> str:
        return static(settings.FAVICON)


api_v1 = [
    path("", include("apps.core.api.urls")),
    path("", include("apps.accounts.api.urls")),
    path("", include("apps.providers.api.urls")),
    path("", include("apps.analytics.api.urls")),
    path("", include("apps.gateway.api.urls")),
    path("", include("apps.monitoring.api.urls")),
    path("", include("apps.realtime.api.urls")),
    path("", include("apps.agents.api.urls")),
    path("", include("apps.artifacts.api.urls")),
    path("", include("apps.builds.api.urls")),
    path("", include("apps.approvals.api.urls")),
    path("", include("apps.experiments.api.urls")),
    path("", include("apps.backups.api.urls")),
    path("", include("apps.alerts.api.urls")),
    path("", include("apps.github.api.urls")),
]

urlpatterns = [
    # The dashboard is the admin site: its Home is /admin/.
    path("", RedirectView.as_view(pattern_name="admin:index"), name="home"),
    path("favicon.ico", FaviconView.as_view(), name="favicon"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/streaming/", include("apps.gateway.urls")),
    # The GitHub API's first paths, kept beside /api/v1/github/.
    path("api/", include(github_api_urls.legacy_urlpatterns)),
    # The analytics API's seed paths, kept beside /api/v1/analytics/.
    path("api/", include(analytics_api_urls.legacy_urlpatterns)),
    path("api/schema/", SchemaApi.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("apps.monitoring.urls")),
]

handler400 = "apps.core.errors.bad_request"
handler403 = "apps.core.errors.permission_denied"
handler404 = "apps.core.errors.page_not_found"
handler500 = "apps.core.errors.server_error"
