"""The approvals in the admin. Requests are made by what needs them (a build step) and never
edited nor deleted; Approve and Reject go through ``approval_decide``, so the policy applies
here as in the API (nobody decides their own request, a critical one only an admin, ...) and
what it refuses shows as a message. The policy itself is one row, an admin's to change (its
model permissions are given to no other role), saved through ``approval_policy_update``, which
keeps each change with who made it (shown below the policy and under *Approval policy
changes*)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.html import format_html_join
from django.utils.safestring import SafeString, mark_safe
from unfold.admin import ModelAdmin  # type: ignore[import-untyped]
from unfold.contrib.filters.admin import (  # type: ignore[import-untyped]
    ChoicesDropdownFilter,
    RangeDateTimeFilter,
)
from unfold.decorators import action  # type: ignore[import-untyped]
from unfold.forms import BaseDialogForm  # type: ignore[import-untyped]
from unfold.utils import display_for_label  # type: ignore[import-untyped]
from unfold.widgets import UnfoldAdminTextareaWidget  # type: ignore[import-untyped]

from apps.accounts.permissions import OPERATE
from apps.core.admin_support import ReadOnlyAdminMixin, ReadOnlyInline, acting_user, to_page

from .models import (
    ApprovalAuditEntry,
    ApprovalPolicy,
    ApprovalPolicyChange,
    ApprovalRequest,
    ApprovalStatus,
    RiskLevel,
)
from .selectors import approval_policy_changes
from .services import APPROVAL_POLICY_FIELDS, approval_decide, approval_policy_update

CHANGES_SHOWN = 10

STATUS_LABELS = {
    ApprovalStatus.PENDING: "warning",
    ApprovalStatus.APPROVED: "success",
    ApprovalStatus.REJECTED: "danger",
    ApprovalStatus.EXPIRED: "",
}
RISK_LABELS = {
    RiskLevel.LOW: "",
    RiskLevel.MEDIUM: "info",
    RiskLevel.HIGH: "warning",
    RiskLevel.CRITICAL: "danger",
}


class AuditEntryInline(ReadOnlyInline):
    model = ApprovalAuditEntry
    fields = readonly_fields = ["created_at", "event", "actor", "notes"]
    ordering = ["created_at", "id"]
    verbose_name_plural = "audit trail"


class NotesForm(BaseDialogForm):
    notes = forms.CharField(
        required=False,
        widget=UnfoldAdminTextareaWidget(attrs={"rows": 4}),
        help_text="Why; kept in the audit trail.",
    )


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(ReadOnlyAdminMixin, ModelAdmin):
    list_display = [
        "id", "kind", "action_shown", "status_badge", "risk_badge", "required_role",
        "requested_by", "created_at", "expires_at", "decided_by", "self_decided",
    ]  # fmt: skip
    list_display_links = ["id", "action_shown"]
    list_filter = [
        ("status", ChoicesDropdownFilter),
        ("risk_level", ChoicesDropdownFilter),
        "kind",
        ("created_at", RangeDateTimeFilter),
    ]
    list_filter_submit = True
    list_select_related = ["requested_by", "decided_by"]
    search_fields = ["action", "reference", "kind"]
    search_help_text = "Part of the action, the reference (build_step:42) or the kind."
    fieldsets = [
        (None, {"fields": ["kind", "action", "status_badge", "risk_badge", "reference"]}),
        (
            "Asked",
            {
                "fields": [
                    "requested_by",
                    "created_at",
                    "expires_at",
                    "context",
                    "required_role",
                    "escalated_at",
                ]
            },
        ),
        ("Decided", {"fields": ["decided_by", "self_decided", "decided_at", "decision_notes"]}),
    ]
    readonly_fields = [
        "kind", "action", "status_badge", "risk_badge", "reference", "requested_by",
        "created_at", "expires_at", "context", "required_role", "escalated_at", "decided_by",
        "self_decided", "decided_at", "decision_notes",
    ]  # fmt: skip
    inlines = [AuditEntryInline]
    actions = ["approve_selected", "reject_selected"]
    actions_detail = ["approve_request", "reject_request"]

    def has_decide_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Operators decide (the operator role); the service's policy applies on top."""
        return request.user.has_perm(OPERATE)

    @admin.display(description="Action", ordering="action")
    def action_shown(self, approval: ApprovalRequest) -> str:
        return approval.action if len(approval.action) <= 120 else approval.action[:120] + "…"

    @admin.display(description="Status", ordering="status")
    def status_badge(self, approval: ApprovalRequest) -> str:
        return display_for_label(
            (approval.status, approval.get_status_display()), "—", STATUS_LABELS
        )

    @admin.display(description="Risk", ordering="risk_level")
    def risk_badge(self, approval: ApprovalRequest) -> str:
        return display_for_label(
            (approval.risk_level, approval.get_risk_level_display()), "—", RISK_LABELS
        )

    def decide(
        self,
        request: HttpRequest,
        approvals: Iterable[ApprovalRequest],
        decision: str,
        notes: str = "",
    ) -> None:
        for approval in approvals:
            try:
                approval_decide(
                    approval=approval, decision=decision, by=acting_user(request), notes=notes
                )
            except (PermissionDenied, ValidationError) as error:
                reason = " ".join(error.messages) if isinstance(error, ValidationError) else error
                self.message_user(request, f"#{approval.pk}: {reason}", messages.ERROR)
            else:
                self.message_user(request, f"#{approval.pk} {decision}.", messages.SUCCESS)

    @action(description="Approve", permissions=["decide"])
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[ApprovalRequest]) -> None:
        self.decide(request, queryset, ApprovalStatus.APPROVED)

    @action(description="Reject", permissions=["decide"])
    def reject_selected(self, request: HttpRequest, queryset: QuerySet[ApprovalRequest]) -> None:
        self.decide(request, queryset, ApprovalStatus.REJECTED)

    def decide_one(
        self, request: HttpRequest, form: NotesForm, object_id: str, decision: str
    ) -> HttpResponse:
        approval = self.get_object(request, object_id)
        if approval is None:
            raise Http404(f"No approval request {object_id}.")
        self.decide(request, [approval], decision, form.cleaned_data["notes"])
        return to_page(request, "admin:approvals_approvalrequest_change", object_id)

    @action(
        description="Approve",
        url_path="approve",
        permissions=["decide"],
        icon="check",
        dialog={
            "title": "Approve this request?",
            "description": "The decision is final.",
            "form_class": NotesForm,
            "form_submit_text": "Approve",
        },
    )
    def approve_request(self, request: HttpRequest, form: NotesForm, object_id: str) -> Any:
        return self.decide_one(request, form, object_id, ApprovalStatus.APPROVED)

    @action(
        description="Reject",
        url_path="reject",
        permissions=["decide"],
        icon="block",
        dialog={
            "title": "Reject this request?",
            "description": "The decision is final; what waits on it fails.",
            "form_class": NotesForm,
            "form_submit_text": "Reject",
        },
    )
    def reject_request(self, request: HttpRequest, form: NotesForm, object_id: str) -> Any:
        return self.decide_one(request, form, object_id, ApprovalStatus.REJECTED)


@admin.register(ApprovalPolicy)
class ApprovalPolicyAdmin(ModelAdmin):
    """A single row: who decides each risk level, auto-approval, self-approval, expiry,
    escalation and the human-in-the-loop switch; applies to the next request and decision."""

    list_display = ["__str__", "enabled", "high_role", "auto_approve_enabled",
                    "self_approve_low_risk", "expiry_outcome", "escalation_seconds",
                    "updated_at"]  # fmt: skip
    fieldsets = [
        (None, {"fields": ["enabled"]}),
        (
            "Who decides",
            {
                "fields": ["low_role", "medium_role", "high_role", "self_approve_low_risk"],
                "description": "A critical request is always an admin's to decide; "
                "nobody decides their own, but with self-approval a low-risk one.",
            },
        ),
        (
            "Auto-approval",
            {
                "fields": [
                    "auto_approve_enabled",
                    "auto_approve_max_risk",
                    "auto_approve_max_cost",
                ],
                "description": "Never a critical request, never a level only admins "
                "decide, and a person's own request at most at low risk.",
            },
        ),
        (
            "Expiry and escalation",
            {"fields": ["default_expiry_seconds", "expiry_outcome", "escalation_seconds"]},
        ),
        ("Changes", {"fields": ["changes_shown"]}),
    ]
    readonly_fields = ["changes_shown"]

    @admin.display(description="Latest changes")
    def changes_shown(self, policy: ApprovalPolicy) -> str:
        return change_lines(approval_policy_changes()[:CHANGES_SHOWN]) or "—"

    def save_model(
        self, request: HttpRequest, obj: ApprovalPolicy, form: forms.ModelForm, change: bool
    ) -> None:
        """Through ``approval_policy_update`` as the person saving (the model's checks show as
        form errors, and the change is kept with their name)."""
        fields = {k: v for k, v in form.cleaned_data.items() if k in APPROVAL_POLICY_FIELDS}
        saved = approval_policy_update(by=acting_user(request), **fields)
        obj.pk = saved.pk
        obj.refresh_from_db()
        obj._state.adding = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not ApprovalPolicy.objects.exists() and super().has_add_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def change_words(change: ApprovalPolicyChange) -> str:
    """``field: before → after; ...``"""
    return "; ".join(f"{name}: {old} → {new}" for name, (old, new) in change.changes.items())


def change_lines(changes: Iterable[ApprovalPolicyChange]) -> SafeString:
    """Changes as lines: when, who, what."""
    return format_html_join(
        mark_safe("<br>"),
        "{} · {} · {}",
        (
            (
                f"{change.created_at:%Y-%m-%d %H:%M:%S}",
                change.actor or "the platform",
                change_words(change),
            )
            for change in changes
        ),
    )


@admin.register(ApprovalPolicyChange)
class ApprovalPolicyChangeAdmin(ReadOnlyAdminMixin, ModelAdmin):
    """The policy's trail: read-only, never deleted."""

    list_display = ["created_at", "actor", "changes_shown"]
    list_select_related = ["actor"]
    list_filter = [("created_at", RangeDateTimeFilter)]
    fields = readonly_fields = ["created_at", "actor", "changes_shown"]

    @admin.display(description="Changes")
    def changes_shown(self, change: ApprovalPolicyChange) -> str:
        return change_words(change)
