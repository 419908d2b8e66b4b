from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .services import health_report


class HealthApi(APIView):
    """For load balancers: 200 while the database answers (even if degraded), else 503."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(responses={200: dict, 503: dict})
    def get(self, request: Request) -> Response:
        report, healthy = health_report()
        return Response(report, status=200 if healthy else 503)
