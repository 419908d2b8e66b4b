from __future__ import annotations

import posixpath
import tempfile
from typing import Any

from django.db.models import QuerySet
from django.http import FileResponse, HttpResponse
from django.utils.http import content_disposition_header
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.generics import ListAPIView
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..filtersets import ArtifactFilter
from ..models import Artifact
from ..selectors import artifact_build_get, artifact_bytes, artifact_get, artifact_list
from ..services import artifact_archive_write
from .serializers import ArtifactDetailOutputSerializer, ArtifactOutputSerializer

READ_PERMISSION = "artifacts.view_artifact"
# An archive this large is spilled from memory to a temporary file while it is sent.
ARCHIVE_IN_MEMORY_BYTES = 8 * 1024 * 1024
CHARSET_TYPES = ("text/", "application/json", "application/xml", "application/yaml")


class FileContentNegotiation(BaseContentNegotiation):
    """A file is answered whatever the client accepts; errors are JSON (the first renderer)."""

    def select_parser(self, request: Request, parsers: Any) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(self, request: Request, renderers: Any, format_suffix: Any = None) -> Any:
        return (renderers[0], renderers[0].media_type)


def download_content_type(artifact: Artifact) -> str:
    """The stored media type, with ``charset=utf-8`` for text (every artifact is UTF-8)."""
    content_type = artifact.content_type or "application/octet-stream"
    if content_type.startswith(CHARSET_TYPES) and "charset" not in content_type:
        content_type = f"{content_type}; charset=utf-8"
    return content_type


class ArtifactListApi(ListAPIView):
    """Artifacts, newest first: filter by ``kind`` (or ``type``), ``build``, ``step``,
    ``agent``, ``language``, ``created_at_after``/``created_at_before``; ``q`` searches names
    and contents; ``ordering`` by name, created_at, size or kind."""

    serializer_class = ArtifactOutputSerializer
    filterset_class = ArtifactFilter
    read_permission = READ_PERMISSION

    def get_queryset(self) -> QuerySet[Artifact]:
        return artifact_list()


class ArtifactDetailApi(APIView):
    read_permission = READ_PERMISSION

    @extend_schema(responses=ArtifactDetailOutputSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(ArtifactDetailOutputSerializer(artifact_get(pk=pk)).data)


class ArtifactDownloadApi(APIView):
    """The artifact's file as an attachment, with its media type (``text/x-python``...)."""

    read_permission = READ_PERMISSION
    content_negotiation_class = FileContentNegotiation

    @extend_schema(
        responses={
            (200, "application/octet-stream"): OpenApiResponse(
                OpenApiTypes.BINARY,
                description="The file; its Content-Type is the artifact's (text/markdown, "
                "text/x-python, text/x-diff...).",
            )
        }
    )
    def get(self, request: Request, pk: int) -> HttpResponse:
        artifact = artifact_get(pk=pk)
        response = HttpResponse(artifact_bytes(artifact=artifact))
        response["Content-Type"] = download_content_type(artifact)
        response["Content-Disposition"] = content_disposition_header(
            True, posixpath.basename(artifact.name)
        )
        response["Content-Security-Policy"] = "sandbox"
        return response


class BuildArtifactsArchiveApi(APIView):
    """Every artifact of the build in one zip: ``step-<position>-<step name>/<name>``."""

    read_permission = READ_PERMISSION
    content_negotiation_class = FileContentNegotiation

    @extend_schema(
        responses={
            (200, "application/zip"): OpenApiResponse(
                OpenApiTypes.BINARY, description="The zip of the build's artifacts."
            )
        }
    )
    def get(self, request: Request, build_id: int) -> FileResponse:
        build = artifact_build_get(pk=build_id)
        spooled = tempfile.SpooledTemporaryFile(max_size=ARCHIVE_IN_MEMORY_BYTES)  # noqa: SIM115
        artifact_archive_write(build=build, file=spooled)
        spooled.seek(0)
        return FileResponse(
            spooled,
            as_attachment=True,
            filename=f"build-{build.pk}-artifacts.zip",
            content_type="application/zip",
        )
