from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..services import connection_stats, feature_status


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
