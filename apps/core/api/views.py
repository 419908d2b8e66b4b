from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..services import platform_settings_get, platform_settings_update
from .serializers import PlatformSettingsInputSerializer, PlatformSettingsOutputSerializer


class PlatformSettingsApi(APIView):
    """The platform's runtime settings (the log level, the live log's level); a change applies
    in every process without a restart."""

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


class SchemaApi(SpectacularAPIView):
    """The OpenAPI schema: public (anyone may read it), in YAML or JSON. A credential that is
    sent is still checked, as everywhere (a revoked key is a 401), and every error answers in
    the REST API's JSON shape, never in the schema's YAML."""

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        if isinstance(response, Response) and response.exception:
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = "application/json"
        return super().finalize_response(request, response, *args, **kwargs)
