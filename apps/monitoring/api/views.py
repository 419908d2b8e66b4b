from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..services import feature_status


class FeatureStatusApi(APIView):
    """Which optional parts are available (Redis, Celery worker, each provider) and what falls
    back to what."""

    @extend_schema(responses=dict)
    def get(self, request: Request) -> Response:
        return Response(feature_status())
