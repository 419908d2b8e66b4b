"""The GitHub API: ``/api/v1/github/...`` (and the ``/api/github/...`` paths kept for clients of
the platform this one follows).

Admins configure the connection (the settings and their Test); operators use it (create,
change, close and comment on issues, open pull requests); viewers read (the user, repositories,
issues, pull requests). Paths without ``repos/{owner}/{repo}`` use the default repository of the
settings. GitHub's failures keep the platform's error shape (``client.github_error``).
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.permissions import RolePermission

from ..models import MANAGE_PERMISSION, BuildPullRequest
from ..selectors import (
    build_pull_request_list,
    github_connection_test,
    github_default_repo,
    github_issue_get,
    github_issue_list,
    github_pull_get,
    github_pull_list,
    github_repo,
    github_settings_get,
    github_user,
)
from ..services import (
    github_issue_close,
    github_issue_comment,
    github_issue_create,
    github_issue_update,
    github_pull_create,
    github_settings_update,
)
from . import serializers as s

ERROR = {"$ref": "#/components/schemas/Error"}
GITHUB_ERRORS = {
    401: OpenApiResponse(ERROR, description="GitHub refused the token (github_unauthorized)."),
    404: OpenApiResponse(ERROR, description="GitHub has no such resource (github_not_found)."),
    429: OpenApiResponse(ERROR, description="GitHub's rate limit; Retry-After is its reset."),
    409: OpenApiResponse(ERROR, description="The connection is disabled (github_disabled)."),
}
WRITE_ERRORS = {
    **GITHUB_ERRORS,
    422: OpenApiResponse(ERROR, description="GitHub refused the input."),
}


def _repo(kwargs: dict[str, Any]) -> tuple[str, str]:
    """The repository named in the path, else the default one (after the input is validated,
    so bad input is answered as such whether or not a default is set)."""
    if "owner" in kwargs:
        return kwargs["owner"], kwargs["repo"]
    return github_default_repo()


def _valid(serializer_class: type, data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class GitHubApi(APIView):
    permission_classes = [RolePermission]


class ListSchema(AutoSchema):
    """A list's ``GET`` is named ``..._list`` (its item's path would take the same name)."""

    def get_operation_id(self) -> str:
        return super().get_operation_id().replace("_retrieve", "_list")


class SettingsApi(GitHubApi):
    """The connection's settings, for admins; the token is write-only (``has_token`` says
    whether one is set)."""

    read_permission = write_permission = MANAGE_PERMISSION

    @extend_schema(responses=s.GitHubSettingsOutputSerializer)
    def get(self, request: Request) -> Response:
        return Response(s.GitHubSettingsOutputSerializer(github_settings_get()).data)

    @extend_schema(
        request=s.GitHubSettingsInputSerializer, responses=s.GitHubSettingsOutputSerializer
    )
    def patch(self, request: Request) -> Response:
        row = github_settings_update(**_valid(s.GitHubSettingsInputSerializer, request.data))
        return Response(s.GitHubSettingsOutputSerializer(row).data)


class SettingsTestApi(GitHubApi):
    """Who the stored token belongs to, its scopes and the rate limit left, or what failed."""

    read_permission = write_permission = MANAGE_PERMISSION

    @extend_schema(
        request=None, responses={200: s.GitHubConnectionTestOutputSerializer, **GITHUB_ERRORS}
    )
    def post(self, request: Request) -> Response:
        return Response(s.GitHubConnectionTestOutputSerializer(github_connection_test()).data)


class UserApi(GitHubApi):
    @extend_schema(responses={200: s.GitHubUserOutputSerializer, **GITHUB_ERRORS})
    def get(self, request: Request) -> Response:
        return Response(s.GitHubUserOutputSerializer(github_user()).data)


class RepoApi(GitHubApi):
    @extend_schema(responses={200: s.GitHubRepoOutputSerializer, **GITHUB_ERRORS})
    def get(self, request: Request, **kwargs: str) -> Response:
        owner, repo = _repo(kwargs)
        return Response(s.GitHubRepoOutputSerializer(github_repo(owner=owner, repo=repo)).data)


class IssueListCreateApi(GitHubApi):
    schema = ListSchema()

    @extend_schema(
        parameters=[s.GitHubIssueListInputSerializer],
        responses={200: s.GitHubIssuePageOutputSerializer, **GITHUB_ERRORS},
    )
    def get(self, request: Request, **kwargs: str) -> Response:
        filters = _valid(s.GitHubIssueListInputSerializer, request.query_params)
        owner, repo = _repo(kwargs)
        if "since" in filters:
            filters["since"] = filters["since"].isoformat()
        page = github_issue_list(owner=owner, repo=repo, **filters)
        return Response(s.GitHubIssuePageOutputSerializer(page).data)

    @extend_schema(
        request=s.GitHubIssueCreateInputSerializer,
        responses={201: s.GitHubIssueOutputSerializer, **WRITE_ERRORS},
    )
    def post(self, request: Request, **kwargs: str) -> Response:
        fields = _valid(s.GitHubIssueCreateInputSerializer, request.data)
        owner, repo = _repo(kwargs)
        issue = github_issue_create(owner=owner, repo=repo, **fields)
        return Response(s.GitHubIssueOutputSerializer(issue).data, status=status.HTTP_201_CREATED)


class IssueDetailApi(GitHubApi):
    @extend_schema(responses={200: s.GitHubIssueOutputSerializer, **GITHUB_ERRORS})
    def get(self, request: Request, number: str, **kwargs: str) -> Response:
        owner, repo = _repo(kwargs)
        issue = github_issue_get(owner=owner, repo=repo, number=int(number))
        return Response(s.GitHubIssueOutputSerializer(issue).data)

    @extend_schema(
        request=s.GitHubIssueUpdateInputSerializer,
        responses={200: s.GitHubIssueOutputSerializer, **WRITE_ERRORS},
    )
    def patch(self, request: Request, number: str, **kwargs: str) -> Response:
        fields = _valid(s.GitHubIssueUpdateInputSerializer, request.data)
        owner, repo = _repo(kwargs)
        issue = github_issue_update(owner=owner, repo=repo, number=int(number), **fields)
        return Response(s.GitHubIssueOutputSerializer(issue).data)


class IssueCloseApi(GitHubApi):
    @extend_schema(
        request=s.GitHubIssueCloseInputSerializer,
        responses={200: s.GitHubIssueOutputSerializer, **WRITE_ERRORS},
    )
    def post(self, request: Request, number: str, **kwargs: str) -> Response:
        fields = _valid(s.GitHubIssueCloseInputSerializer, request.data)
        owner, repo = _repo(kwargs)
        issue = github_issue_close(owner=owner, repo=repo, number=int(number), **fields)
        return Response(s.GitHubIssueOutputSerializer(issue).data)


class IssueCommentApi(GitHubApi):
    @extend_schema(
        request=s.GitHubCommentInputSerializer,
        responses={201: s.GitHubCommentOutputSerializer, **WRITE_ERRORS},
    )
    def post(self, request: Request, number: str, **kwargs: str) -> Response:
        fields = _valid(s.GitHubCommentInputSerializer, request.data)
        owner, repo = _repo(kwargs)
        comment = github_issue_comment(owner=owner, repo=repo, number=int(number), **fields)
        return Response(
            s.GitHubCommentOutputSerializer(comment).data, status=status.HTTP_201_CREATED
        )


class PullListCreateApi(GitHubApi):
    schema = ListSchema()

    @extend_schema(
        parameters=[s.GitHubPullListInputSerializer],
        responses={200: s.GitHubPullPageOutputSerializer, **GITHUB_ERRORS},
    )
    def get(self, request: Request, **kwargs: str) -> Response:
        filters = _valid(s.GitHubPullListInputSerializer, request.query_params)
        owner, repo = _repo(kwargs)
        return Response(
            s.GitHubPullPageOutputSerializer(
                github_pull_list(owner=owner, repo=repo, **filters)
            ).data
        )

    @extend_schema(
        request=s.GitHubPullCreateInputSerializer,
        responses={201: s.GitHubPullOutputSerializer, **WRITE_ERRORS},
    )
    def post(self, request: Request, **kwargs: str) -> Response:
        fields = _valid(s.GitHubPullCreateInputSerializer, request.data)
        owner, repo = _repo(kwargs)
        pull = github_pull_create(owner=owner, repo=repo, **fields)
        return Response(s.GitHubPullOutputSerializer(pull).data, status=status.HTTP_201_CREATED)


class PullDetailApi(GitHubApi):
    @extend_schema(responses={200: s.GitHubPullOutputSerializer, **GITHUB_ERRORS})
    def get(self, request: Request, number: str, **kwargs: str) -> Response:
        owner, repo = _repo(kwargs)
        return Response(
            s.GitHubPullOutputSerializer(
                github_pull_get(owner=owner, repo=repo, number=int(number))
            ).data
        )


class BuildPullRequestListApi(ListAPIView):
    """The pull requests builds opened (their publish steps), newest first, with their state as
    beat last refreshed it (open, merged, closed)."""

    permission_classes = [RolePermission]
    serializer_class = s.BuildPullRequestOutputSerializer

    @extend_schema(parameters=[s.BuildPullRequestListInputSerializer])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[BuildPullRequest]:
        if getattr(self, "swagger_fake_view", False):
            return BuildPullRequest.objects.none()
        filters = _valid(s.BuildPullRequestListInputSerializer, self.request.query_params)
        return build_pull_request_list(build_id=filters.get("build"))
