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
from apps.core.health import CheckOutcome, registered_checks, run_check

from .metrics import exposition
from .services import check_document, health_detailed, health_report


class HealthApi(APIView):
    """For load balancers: 200 while the database answers (even if degraded), else 503."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(responses={200: dict, 503: dict})
    def get(self, request: Request) -> Response:
        report, healthy = health_report()
        return Response(report, status=200 if healthy else 503)


class LivenessApi(APIView):
    """Kubernetes' liveness probe: 200 while this process serves requests; it checks nothing
    else, so a database or Redis outage never gets a healthy process restarted."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(responses={200: dict})
    def get(self, request: Request) -> Response:
        return Response({"status": "ok"})


class ReadinessApi(APIView):
    """Kubernetes' readiness probe: the critical checks only (the database); 503 while one
    fails, so traffic goes to other instances meanwhile."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(responses={200: dict, 503: dict})
    def get(self, request: Request) -> Response:
        checks = {}
        for check in registered_checks():
            if check.critical:
                result, latency_ms = run_check(check)
                checks[check.name] = check_document(CheckOutcome(check, result, latency_ms))
        ready = all(check["status"] != "error" for check in checks.values())
        return Response(
            {"status": "ok" if ready else "error", "checks": checks}, status=200 if ready else 503
        )


class HealthDetailedApi(APIView):
    """Every check with its details, the host's memory, CPU and disk, and each provider's last
    probe and circuit. For the viewer role: it names hosts, folders and versions."""

    @extend_schema(responses={200: dict, 503: dict})
    def get(self, request: Request) -> Response:
        report, healthy = health_detailed()
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
