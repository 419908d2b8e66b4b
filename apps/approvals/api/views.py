"""Approval requests: reads for the viewer role; asking and deciding need the operator role,
changing the policy the admin role, and the policy applies on top (a decision on your own
request, a critical one by a non-admin, ...: 403 saying why). A request already decided or
expired is a 409 ``conflict``. Callers act as themselves only: a ``requester_id`` or
``approver_id`` that is not the caller's id is a 403."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.authentication import request_user
from apps.core.api.shortcuts import state_conflicts, validated

from ..filtersets import ApprovalFilter
from ..models import ApprovalAuditEntry, ApprovalPolicyChange, ApprovalRequest
from ..selectors import (
    approval_get,
    approval_history,
    approval_list,
    approval_pending_list,
    approval_policy,
    approval_policy_changes,
    approval_stats,
)
from ..services import approval_decide, approval_policy_update, approval_request_create
from .serializers import (
    ApprovalDetailOutputSerializer,
    ApprovalOutputSerializer,
    ApprovalPolicyChangeOutputSerializer,
    ApprovalPolicyInputSerializer,
    ApprovalPolicyOutputSerializer,
    ApprovalPolicyReplaceSerializer,
    ApprovalRequestInputSerializer,
    ApprovalStatsOutputSerializer,
    AuditEntryOutputSerializer,
    DecisionInputSerializer,
)

ERROR = {"$ref": "#/components/schemas/Error"}


def only_yourself(request: Request, given: int | None, what: str) -> None:
    """Nobody acts as someone else: a given id must be the caller's own."""
    if given is not None and given != request_user(request).pk:
        raise PermissionDenied(f"{what} is you, the caller (user {request_user(request).pk}).")


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


class ApprovalRequestApi(APIView):
    """Ask for a decision (``action_type``, ``proposed_action``, ``risk_level``…). The answer
    may already be approved: by an auto-approval rule of the policy, or because
    human-in-the-loop is switched off."""

    @extend_schema(
        request=ApprovalRequestInputSerializer,
        responses={
            201: ApprovalDetailOutputSerializer,
            403: OpenApiResponse(ERROR, description="requester_id is not the caller."),
        },
    )
    def post(self, request: Request) -> Response:
        data = validated(ApprovalRequestInputSerializer, request)
        only_yourself(request, data.get("requester_id"), "The requester")
        approval = approval_request_create(
            kind=data["approval_type"],
            action=data["proposed_action"],
            reference=data["orchestration_id"],
            risk_level=data["risk_level"],
            context=data["context"],
            requested_by=request_user(request),
            expires_in_seconds=data.get("expires_in_seconds"),
        )
        return Response(
            ApprovalDetailOutputSerializer(approval_get(pk=approval.pk)).data,
            status=status.HTTP_201_CREATED,
        )


class ApprovalDetailApi(APIView):
    @extend_schema(responses=ApprovalDetailOutputSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(ApprovalDetailOutputSerializer(approval_get(pk=pk)).data)


class ApprovalHistoryApi(ListAPIView):
    """A request's audit trail, oldest first: requested, escalated, approved / rejected /
    expired, each with who (none: the platform) and the notes."""

    serializer_class = AuditEntryOutputSerializer
    queryset = ApprovalAuditEntry.objects.none()  # the schema's model; requests use the below

    def get_queryset(self) -> QuerySet[ApprovalAuditEntry]:
        return approval_history(pk=self.kwargs["pk"])


class ApprovalDecideApi(APIView):
    """Approve or reject: final, kept in the audit trail; what waits on it (a build step)
    goes on or fails in the same transaction. Served at ``approvals/{id}/decide`` and at the
    earlier approvals service's ``approvals/pending/{id}/decide``; both take either payload."""

    @extend_schema(
        request=DecisionInputSerializer,
        responses={
            200: ApprovalDetailOutputSerializer,
            403: OpenApiResponse(
                ERROR,
                description="Refused by the policy (your own request, a role too weak "
                "for its risk or escalation), or approver_id is not the caller.",
            ),
            409: OpenApiResponse(ERROR, description="Already decided, or expired."),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        data = validated(DecisionInputSerializer, request)
        only_yourself(request, data["approver_id"], "The approver")
        with state_conflicts():
            approval = approval_decide(
                approval=approval_get(pk=pk),
                decision=data["decision"],
                by=request_user(request),
                notes=data["notes"],
            )
        return Response(ApprovalDetailOutputSerializer(approval_get(pk=approval.pk)).data)


class ApprovalStatsApi(APIView):
    """Counts by status and by risk level, and the median time to a person's decision."""

    @extend_schema(responses=ApprovalStatsOutputSerializer)
    def get(self, request: Request) -> Response:
        return Response(ApprovalStatsOutputSerializer(approval_stats()).data)


POLICY_PERMISSION = "approvals.change_approvalpolicy"


class ApprovalPolicyApi(APIView):
    """The approval policy (runtime settings): who decides each risk level, auto-approval,
    self-approval, the outcome on expiry, escalation, the default expiry, and the ``hitl``
    switch. Everyone reads it; an admin alone changes it (PATCH some fields, PUT all), and
    each change is kept (``approvals/policy/history``)."""

    write_permission = POLICY_PERMISSION

    @extend_schema(responses=ApprovalPolicyOutputSerializer)
    def get(self, request: Request) -> Response:
        return Response(ApprovalPolicyOutputSerializer(approval_policy()).data)

    @extend_schema(
        request=ApprovalPolicyInputSerializer,
        responses={
            200: ApprovalPolicyOutputSerializer,
            403: OpenApiResponse(ERROR, description="Not an admin."),
        },
    )
    def patch(self, request: Request) -> Response:
        return self.update(request, ApprovalPolicyInputSerializer)

    @extend_schema(
        request=ApprovalPolicyReplaceSerializer,
        responses={
            200: ApprovalPolicyOutputSerializer,
            403: OpenApiResponse(ERROR, description="Not an admin."),
        },
    )
    def put(self, request: Request) -> Response:
        return self.update(request, ApprovalPolicyReplaceSerializer)

    def update(
        self, request: Request, serializer_class: type[ApprovalPolicyInputSerializer]
    ) -> Response:
        data = validated(serializer_class, request)
        policy = approval_policy_update(by=request_user(request), **data)
        return Response(ApprovalPolicyOutputSerializer(policy).data)


class ApprovalPolicyHistoryApi(ListAPIView):
    """Every change of the policy, the latest first: who made it and each field's value
    before and after."""

    serializer_class = ApprovalPolicyChangeOutputSerializer
    queryset = ApprovalPolicyChange.objects.none()  # the schema's model; requests use the below

    def get_queryset(self) -> QuerySet[ApprovalPolicyChange]:
        return approval_policy_changes()
