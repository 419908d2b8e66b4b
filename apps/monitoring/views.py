import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from drf_spectacular.utils import extend_schema
from prometheus_client import CONTENT_TYPE_LATEST
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.middleware import request_client
from apps.core.errors import error_response

from .metrics import exposition
from .services import health_report


class HealthApi(APIView):
    """For load balancers: 200 while the database answers (even if degraded), else 503."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(responses={200: dict, 503: dict})
    def get(self, request: Request) -> Response:
        report, healthy = health_report()
        return Response(report, status=200 if healthy else 503)


def _scraper_allowed(request: HttpRequest) -> bool:
    """A scrape is allowed from ``METRICS_ALLOWED_NETWORKS`` (the client as the rate limits see
    it, so a written ``X-Forwarded-For`` counts for nothing) or with ``METRICS_TOKEN`` as its
    bearer token (Prometheus' ``authorization`` in the scrape config)."""
    token = settings.METRICS_TOKEN
    given = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return True
    try:
        client = ipaddress.ip_address(request_client(request))
    except ValueError:
        return False
    return any(client in ipaddress.ip_network(n) for n in settings.METRICS_ALLOWED_NETWORKS)


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus' exposition (``metrics.exposition``), for allowed scrapers only: it names
    every route, provider and model, and weighs megabytes."""
    if not _scraper_allowed(request):
        return error_response(
            "forbidden",
            "/metrics is for allowed networks (METRICS_ALLOWED_NETWORKS) or a bearer token "
            "(METRICS_TOKEN).",
            403,
        )
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
