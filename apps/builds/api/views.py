"""Builds and build templates. Reads need the viewer role, writes (create, cancel, retry, run,
templates) the operator role (the default ``RolePermission``). An action the build's state does
not allow (cancelling a finished build, retrying one that did not fail) is a 409 ``conflict``."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.authentication import request_user
from apps.core.api.shortcuts import state_conflicts, validated

from ..filtersets import BuildFilter
from ..models import Build, BuildEvent, BuildTemplate
from ..selectors import build_events, build_get, build_list, template_get, template_list
from ..services import (
    build_cancel,
    build_create,
    build_create_from_template,
    build_retry,
    build_template_create,
    build_template_delete,
    build_template_update,
)
from .serializers import (
    BuildDetailOutputSerializer,
    BuildEventOutputSerializer,
    BuildInputSerializer,
    BuildOutputSerializer,
    TemplateInputSerializer,
    TemplateOutputSerializer,
    TemplateRunInputSerializer,
)

ERROR = {"$ref": "#/components/schemas/Error"}
CONFLICT = OpenApiResponse(ERROR, description="The build's state does not allow it.")
FROM_ISSUE = {
    404: OpenApiResponse(ERROR, description="No such GitHub issue (github_issue)."),
    409: OpenApiResponse(ERROR, description="The GitHub connection is off (github_disabled)."),
}


def created(build: Build) -> Response:
    return Response(
        BuildDetailOutputSerializer(build_get(pk=build.pk)).data, status=status.HTTP_201_CREATED
    )


# --- builds -----------------------------------------------------------------------------------


class BuildListCreateApi(ListAPIView):
    """``GET``: builds, newest first, each with its steps in brief and its totals.
    ``POST``: start a build from steps (``title``, ``input``, ``steps``) or from a template
    (``template``, optional ``title``, ``input``), optionally from a GitHub issue
    (``github_issue``); its first step is queued on Celery. A bad issue reference is a 400, a
    missing issue a 404, the GitHub connection off a 409 (``github_disabled``)."""

    serializer_class = BuildOutputSerializer
    filterset_class = BuildFilter

    def get_queryset(self) -> QuerySet[Build]:
        return build_list()

    @extend_schema(
        request=BuildInputSerializer, responses={201: BuildDetailOutputSerializer, **FROM_ISSUE}
    )
    def post(self, request: Request) -> Response:
        data = validated(BuildInputSerializer, request)
        user = request_user(request)
        if "template" in data:
            build = build_create_from_template(
                template=data["template"],
                by=user,
                input=data["input"],
                title=data.get("title", ""),
                github_issue=data["github_issue"],
            )
        else:
            build = build_create(
                title=data.get("title", ""),
                input=data["input"],
                steps=data["steps"],
                by=user,
                github_issue=data["github_issue"],
            )
        return created(build)


class BuildDetailApi(APIView):
    @extend_schema(responses=BuildDetailOutputSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(BuildDetailOutputSerializer(build_get(pk=pk)).data)


class BuildEventListApi(ListAPIView):
    """The build's lifecycle, oldest first: queued, started, retried, awaiting approval,
    approved, rejected, finished, for the build (``step`` null) and each step."""

    serializer_class = BuildEventOutputSerializer

    def get_queryset(self) -> QuerySet[BuildEvent]:
        if getattr(self, "swagger_fake_view", False):  # the schema, made without a request
            return BuildEvent.objects.none()
        return build_events(build=build_get(pk=self.kwargs["pk"]))


class BuildCancelApi(APIView):
    """Stop the running step (its upstream request is closed) and every step after it."""

    @extend_schema(request=None, responses={200: BuildDetailOutputSerializer, 409: CONFLICT})
    def post(self, request: Request, pk: int) -> Response:
        with state_conflicts():
            build = build_cancel(build=build_get(pk=pk), by=request_user(request))
        return Response(BuildDetailOutputSerializer(build_get(pk=build.pk)).data)


class BuildRetryApi(APIView):
    """Run a failed or cancelled build again from its first step that did not succeed."""

    @extend_schema(request=None, responses={200: BuildDetailOutputSerializer, 409: CONFLICT})
    def post(self, request: Request, pk: int) -> Response:
        with state_conflicts():
            build = build_retry(build=build_get(pk=pk), by=request_user(request))
        return Response(BuildDetailOutputSerializer(build_get(pk=build.pk)).data)


# --- templates --------------------------------------------------------------------------------


class TemplateListCreateApi(ListAPIView):
    serializer_class = TemplateOutputSerializer

    def get_queryset(self) -> QuerySet[BuildTemplate]:
        return template_list()

    @extend_schema(request=TemplateInputSerializer, responses={201: TemplateOutputSerializer})
    def post(self, request: Request) -> Response:
        data = validated(TemplateInputSerializer, request)
        template = build_template_create(by=request_user(request), **data)
        return Response(TemplateOutputSerializer(template).data, status=status.HTTP_201_CREATED)


class TemplateDetailApi(APIView):
    @extend_schema(responses=TemplateOutputSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(TemplateOutputSerializer(template_get(pk=pk)).data)

    @extend_schema(request=TemplateInputSerializer, responses=TemplateOutputSerializer)
    def patch(self, request: Request, pk: int) -> Response:
        template = template_get(pk=pk)
        data = validated(TemplateInputSerializer, request, partial=True)
        template = build_template_update(template=template, **data)
        return Response(TemplateOutputSerializer(template).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        build_template_delete(template=template_get(pk=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class TemplateRunApi(APIView):
    """Start a build with the template's steps."""

    @extend_schema(
        request=TemplateRunInputSerializer,
        responses={201: BuildDetailOutputSerializer, **FROM_ISSUE},
    )
    def post(self, request: Request, pk: int) -> Response:
        template = template_get(pk=pk)
        data = validated(TemplateRunInputSerializer, request)
        build = build_create_from_template(template=template, by=request_user(request), **data)
        return created(build)
