from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api.shortcuts import validated

from ..authentication import request_api_key, request_user
from ..models import Budget, Role
from ..permissions import VIEW
from ..selectors import (
    api_key_get,
    api_key_list,
    budget_get,
    budget_list,
    budget_standings,
    user_get,
    user_list,
    workspace_get,
    workspace_list,
)
from ..services import (
    api_key_create,
    api_key_revoke,
    budget_create,
    budget_delete,
    budget_update,
    user_role,
    user_set_role,
    workspace_create,
    workspace_delete,
    workspace_update,
)
from .serializers import (
    ApiKeyCreatedSerializer,
    ApiKeyCreateInputSerializer,
    ApiKeyOutputSerializer,
    BudgetInputSerializer,
    BudgetOutputSerializer,
    MeOutputSerializer,
    RoleInputSerializer,
    UserOutputSerializer,
    WorkspaceInputSerializer,
    WorkspaceOutputSerializer,
)


class MeApi(APIView):
    @extend_schema(responses=MeOutputSerializer)
    def get(self, request: Request) -> Response:
        api_key = request_api_key(request)
        user = request_user(request)
        data = {
            "id": user.pk,
            "username": user.get_username(),
            "email": user.email,
            "role": user_role(user=user),
            "api_key": api_key.prefix if api_key else None,
        }
        return Response(MeOutputSerializer(data).data)


class ApiKeyListCreateApi(APIView):
    """Every role manages its own keys; a read-only viewer still needs one for scripts.

    A key created with a key expires no later than its creator, and its rate limits are no
    looser than the creator's, so a key handed to a service cannot mint itself a key that
    outlives it or one without its limits.
    """

    write_permission = VIEW

    @extend_schema(responses=ApiKeyOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        keys = api_key_list(visible_to=request_user(request))
        return Response(ApiKeyOutputSerializer(keys, many=True).data)

    @extend_schema(request=ApiKeyCreateInputSerializer, responses={201: ApiKeyCreatedSerializer})
    def post(self, request: Request) -> Response:
        data = ApiKeyCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        expires_at = data.validated_data.get("expires_at")
        limits = {name: data.validated_data.get(name) for name in ("rpm_limit", "tpm_limit")}
        creator = request_api_key(request)
        if creator is not None and creator.expires_at is not None:
            expires_at = min(expires_at or creator.expires_at, creator.expires_at)
        if creator is not None:
            for name, value in limits.items():
                ceiling = getattr(creator, name)
                if ceiling is not None:
                    limits[name] = min(value or ceiling, ceiling)
        api_key, raw_key = api_key_create(
            user=request_user(request),
            name=data.validated_data["name"],
            expires_at=expires_at,
            rpm_limit=limits["rpm_limit"],
            tpm_limit=limits["tpm_limit"],
        )
        created = ApiKeyCreatedSerializer(api_key, context={"raw_key": raw_key})
        return Response(created.data, status=status.HTTP_201_CREATED)


class ApiKeyDetailApi(APIView):
    @extend_schema(responses=ApiKeyOutputSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(
            ApiKeyOutputSerializer(api_key_get(pk=pk, visible_to=request_user(request))).data
        )


class ApiKeyRevokeApi(APIView):
    write_permission = VIEW

    @extend_schema(request=None, responses=ApiKeyOutputSerializer)
    def post(self, request: Request, pk: int) -> Response:
        api_key = api_key_revoke(api_key=api_key_get(pk=pk, visible_to=request_user(request)))
        return Response(ApiKeyOutputSerializer(api_key).data)


class UserListApi(APIView):
    read_permission = "auth.view_user"

    @extend_schema(responses=UserOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(UserOutputSerializer(user_list(), many=True).data)


class UserRoleApi(APIView):
    """Admins give a user exactly one role."""

    write_permission = "auth.change_user"

    @extend_schema(request=RoleInputSerializer, responses=UserOutputSerializer)
    def post(self, request: Request, pk: int) -> Response:
        data = RoleInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = user_set_role(user=user_get(pk=pk), role=Role(data.validated_data["role"]))
        return Response(UserOutputSerializer(user).data)


class WorkspaceListCreateApi(ListAPIView):
    """Workspaces group users and API keys for attribution (and budgets): every role reads
    them, admins change them."""

    serializer_class = WorkspaceOutputSerializer
    pagination_class = None
    write_permission = "accounts.change_workspace"

    def get_queryset(self):
        return workspace_list()

    @extend_schema(request=WorkspaceInputSerializer, responses={201: WorkspaceOutputSerializer})
    def post(self, request: Request) -> Response:
        workspace = workspace_create(**validated(WorkspaceInputSerializer, request))
        return Response(
            WorkspaceOutputSerializer(workspace_get(pk=workspace.pk)).data,
            status=status.HTTP_201_CREATED,
        )


class WorkspaceDetailApi(APIView):
    write_permission = "accounts.change_workspace"

    @extend_schema(responses=WorkspaceOutputSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(WorkspaceOutputSerializer(workspace_get(pk=pk)).data)

    @extend_schema(request=WorkspaceInputSerializer, responses=WorkspaceOutputSerializer)
    def patch(self, request: Request, pk: int) -> Response:
        data = validated(WorkspaceInputSerializer, request, partial=True)
        workspace_update(workspace=workspace_get(pk=pk), **data)
        return Response(WorkspaceOutputSerializer(workspace_get(pk=pk)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        workspace_delete(workspace=workspace_get(pk=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


def _budget_answer(found: list[Budget] | Budget) -> Any:
    """Budgets with their standings (one Redis round trip for all)."""
    listed = found if isinstance(found, list) else [found]
    context = {"standings": budget_standings(listed)}
    return BudgetOutputSerializer(found, many=isinstance(found, list), context=context).data


class BudgetListCreateApi(APIView):
    """Spend limits per API key, user, end user or workspace, per day or month (UTC), each with
    its spend in the current window and when that resets: every role reads them, admins
    change them."""

    write_permission = "accounts.change_budget"

    @extend_schema(responses=BudgetOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(_budget_answer(list(budget_list())))

    @extend_schema(request=BudgetInputSerializer, responses={201: BudgetOutputSerializer})
    def post(self, request: Request) -> Response:
        budget = budget_create(**validated(BudgetInputSerializer, request))
        return Response(_budget_answer(budget_get(pk=budget.pk)), status=status.HTTP_201_CREATED)


class BudgetDetailApi(APIView):
    write_permission = "accounts.change_budget"

    @extend_schema(responses=BudgetOutputSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(_budget_answer(budget_get(pk=pk)))

    @extend_schema(request=BudgetInputSerializer, responses=BudgetOutputSerializer)
    def patch(self, request: Request, pk: int) -> Response:
        data = validated(BudgetInputSerializer, request, partial=True)
        budget_update(budget=budget_get(pk=pk), **data)
        return Response(_budget_answer(budget_get(pk=pk)))

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        budget_delete(budget=budget_get(pk=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)
