from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..services import platform_settings_get, platform_settings_update
from .serializers import PlatformSettingsInputSerializer, PlatformSettingsOutputSerializer


class PlatformSettingsApi(APIView):
    """The platform's runtime settings (the log level); a change applies in every process
    without a restart."""

    @extend_schema(responses=PlatformSettingsOutputSerializer)
    def get(self, request: Request) -> Response:
        return Response(PlatformSettingsOutputSerializer(platform_settings_get()).data)

    @extend_schema(
        request=PlatformSettingsInputSerializer, responses=PlatformSettingsOutputSerializer
    )
    def patch(self, request: Request) -> Response:
        serializer = PlatformSettingsInputSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        row = platform_settings_update(**serializer.validated_data)
        return Response(PlatformSettingsOutputSerializer(row).data)
