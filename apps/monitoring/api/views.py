from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.health import CheckOutcome, health_checks, run_check

from ..selectors import health_change_list, health_state_list
from ..services import (
    check_document,
    connection_stats,
    feature_status,
    health_detailed,
    system_figures,
)

HISTORY_SHOWN = 50


class FeatureStatusApi(APIView):
    """Which optional parts are available (Redis, Celery worker, each provider) and what falls
    back to what."""

    @extend_schema(responses=dict)
    def get(self, request: Request) -> Response:
        return Response(feature_status())


class ConnectionStatsApi(APIView):
    """The connection pools of every process (HTTP per provider, database, Redis): size, in
    use and idle, per process and summed. Processes report every few seconds."""

    @extend_schema(responses=dict)
    def get(self, request: Request) -> Response:
        return Response(connection_stats())


class MonitoringHealthApi(APIView):
    """Every health check now, with details, the host and the providers (as
    ``/health/detailed``), and each check's state as the periodic run last stored it."""

    @extend_schema(responses=dict)
    def get(self, request: Request) -> Response:
        report, _healthy = health_detailed()
        report["stored"] = {
            state.check_name: {
                "status": state.status,
                "message": state.message,
                "since": state.since.isoformat(),
                "checked_at": state.checked_at.isoformat(),
            }
            for state in health_state_list()
        }
        return Response(report)


class MonitoringCheckApi(APIView):
    """One health check now, and its latest state changes as the periodic run stored them
    (newest first)."""

    @extend_schema(operation_id="api_v1_monitoring_health_check_retrieve", responses=dict)
    def get(self, request: Request, check_name: str) -> Response:
        check = health_checks.get(check_name)
        if check is None:
            raise Http404(f"no health check named {check_name!r}")
        result, latency_ms = run_check(check)
        changes = health_change_list(check_name=check_name)[:HISTORY_SHOWN]
        return Response(
            {
                "name": check_name,
                **check_document(CheckOutcome(check, result, latency_ms)),
                "history": [
                    {
                        "status": change.status,
                        "previous_status": change.previous_status,
                        "message": change.message,
                        "changed_at": change.changed_at.isoformat(),
                    }
                    for change in changes
                ],
            }
        )


class MonitoringSystemApi(APIView):
    """The host and this web process: memory, CPU and load, disk of the var and media
    folders, versions."""

    @extend_schema(responses=dict)
    def get(self, request: Request) -> Response:
        return Response(system_figures())
