"""Approval requests: reads for the viewer role; a decision needs the operator role, and the
service's policy applies on top (nobody decides their own request: 403; a critical one only an
admin: 403). A request already decided or expired is a 409 ``conflict``."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.authentication import request_user
from apps.core.api.shortcuts import state_conflicts

from ..filtersets import ApprovalFilter
from ..models import ApprovalRequest
from ..selectors import approval_get, approval_list, approval_pending_list
from ..services import approval_decide
from .serializers import (
    ApprovalDetailOutputSerializer,
    ApprovalOutputSerializer,
    DecisionInputSerializer,
)

ERROR = {"$ref": "#/components/schemas/Error"}


class ApprovalListApi(ListAPIView):
    """Every request, newest first; filter by ``status``, ``kind``, ``risk_level``."""

    serializer_class = ApprovalOutputSerializer
    filterset_class = ApprovalFilter

    def get_queryset(self) -> QuerySet[ApprovalRequest]:
        return approval_list()


class ApprovalPendingListApi(ListAPIView):
    """The queue: requests waiting for a decision, the first to expire first."""

    serializer_class = ApprovalOutputSerializer
    filterset_class = ApprovalFilter

    def get_queryset(self) -> QuerySet[ApprovalRequest]:
        return approval_pending_list()


class ApprovalDetailApi(APIView):
    @extend_schema(responses=ApprovalDetailOutputSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(ApprovalDetailOutputSerializer(approval_get(pk=pk)).data)


class ApprovalDecideApi(APIView):
    """Approve or reject: final, kept in the audit trail; what waits on it (a build step)
    goes on or fails in the same transaction."""

    @extend_schema(
        request=DecisionInputSerializer,
        responses={
            200: ApprovalDetailOutputSerializer,
            403: OpenApiResponse(ERROR, description="Your own request, or a critical one."),
            409: OpenApiResponse(ERROR, description="Already decided or expired."),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        data = DecisionInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        with state_conflicts():
            approval = approval_decide(
                approval=approval_get(pk=pk), by=request_user(request), **data.validated_data
            )
        return Response(ApprovalDetailOutputSerializer(approval_get(pk=approval.pk)).data)
