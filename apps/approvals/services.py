"""Asking for a decision, deciding, expiring, escalating, and the policy that governs them.

The policy (``ApprovalPolicy``, one row of runtime settings), an admin's alone to change (each
change kept in ``ApprovalPolicyChange`` with who made it and what changed):

- who decides: a viewer never; nobody their own request (with ``self_approve_low_risk``, a
  requester their own low-risk one, recorded as ``self_decided``); otherwise the request's
  ``required_role`` or stronger: the policy's role for its risk level when it was asked (a
  critical one always an admin's), raised to admin by escalation;
- auto-approval (when enabled): a new request at most ``auto_approve_max_risk`` whose
  context's ``cost`` is at most ``auto_approve_max_cost`` (any cost when that is blank) is
  approved at once by the platform, but never one the platform may not approve
  (``_rule_may_approve``): a critical one, one only an admin may decide, one a person
  asked above low risk (else an operator could approve their own request by the rule); with
  human-in-the-loop switched off every new request is approved at once but a critical one,
  which waits for an admin;
- expiry: a request nobody decided by ``expires_at`` is expired (rejected: what waits on it
  fails) or approved, as ``expiry_outcome`` says; a decision that comes too late is refused;
- escalation: a request still pending ``escalation_seconds`` after it was asked is announced
  once more (``approval.escalated``), to admins, who alone may then decide it.

Decisions are final: each settles a pending request under a row lock, so of two concurrent ones
exactly one is recorded and the other refused. Each is kept in the append-only audit trail and
sent as ``approval_decided`` inside the same transaction (the builds app resumes or fails the
step that waits), then published on ``approvals`` once committed.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Role
from apps.accounts.services import user_role
from apps.core.events import publish_on_commit
from apps.core.services import instance_update

from .models import (
    RISK_ORDER,
    ApprovalAuditEntry,
    ApprovalPolicy,
    ApprovalPolicyChange,
    ApprovalRequest,
    ApprovalStatus,
    AuditEvent,
    DeciderRole,
    ExpiryOutcome,
    RiskLevel,
)
from .selectors import approval_policy
from .signals import approval_decided

DECISIONS = (ApprovalStatus.APPROVED, ApprovalStatus.REJECTED)
ROLE_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}
HITL_OFF_NOTE = "Human-in-the-loop is switched off: approved without a person."
SELF_DECIDED_NOTE = "Decided by its own requester, as the policy allows for a low-risk request."
EXPIRED_NOTE = "Expired before anyone decided."
EXPIRED_APPROVED_NOTE = "Nobody decided before it expired: approved, as the policy says on expiry."
APPROVAL_POLICY_FIELDS = (
    "enabled", "low_role", "medium_role", "high_role", "auto_approve_enabled",
    "auto_approve_max_risk", "auto_approve_max_cost", "self_approve_low_risk", "expiry_outcome",
    "escalation_seconds", "default_expiry_seconds",
)  # fmt: skip
POLICY_CHANGE_REFUSAL = "Changing the approval policy needs the admin role."


# --- the policy ----------------------------------------------------------------------------------


def approval_policy_update(*, by: User | None = None, **fields: Any) -> ApprovalPolicy:
    """Change the policy (``APPROVAL_POLICY_FIELDS``) as ``by``, who must be an admin (None:
    the platform itself, a script); it applies to the next request and decision, and requests
    already asked keep the role they need. What changed is kept, with who changed it, in
    ``ApprovalPolicyChange`` (nothing when nothing changed)."""
    if by is not None and user_role(user=by) != Role.ADMIN:
        raise PermissionDenied(POLICY_CHANGE_REFUSAL)
    with transaction.atomic():
        row, _ = ApprovalPolicy.objects.select_for_update().get_or_create(
            pk=ApprovalPolicy.SINGLETON_PK
        )
        before = _policy_values(row)
        row = instance_update(instance=row, fields=APPROVAL_POLICY_FIELDS, data=fields)
        after = _policy_values(row)
        changes = {
            name: [before[name], after[name]] for name in after if before[name] != after[name]
        }
        if changes:
            ApprovalPolicyChange.objects.create(actor=by, changes=changes)
    return row


def _policy_values(policy: ApprovalPolicy) -> dict[str, Any]:
    """The policy's fields as JSON keeps them (a cost as its text, as the API shows it)."""
    values = {name: getattr(policy, name) for name in APPROVAL_POLICY_FIELDS}
    cost = values["auto_approve_max_cost"]
    values["auto_approve_max_cost"] = None if cost is None else _number(Decimal(cost))
    return values


def approval_refusal(*, approval: ApprovalRequest, user: User | None) -> str | None:
    """Why ``user`` may not decide ``approval`` under the policy, or None when they may.

    Says nothing of the request's state (decided, expired): ``approval_decide`` does."""
    role = user_role(user=user) if user is not None and user.is_active else None
    if user is None or role is None or role == Role.VIEWER:
        return "Deciding an approval needs the operator role."
    if _own(approval, user):
        self_approval = approval_policy().self_approve_low_risk
        if not self_approval:
            return "Nobody may decide their own request."
        if approval.risk_level != RiskLevel.LOW:
            return "Nobody may decide their own request above low risk."
    if ROLE_RANK[role] < ROLE_RANK[Role(approval.required_role)]:
        if approval.risk_level == RiskLevel.CRITICAL:
            return "Only an admin may decide a critical request."
        if approval.escalated_at is not None:
            return "Only an admin may decide this request: it was escalated."
        return f"Only an admin may decide a {approval.risk_level}-risk request."
    return None


def _own(approval: ApprovalRequest, user: User) -> bool:
    return approval.requested_by_id is not None and approval.requested_by_id == user.pk


def _rule_may_approve(
    *, policy: ApprovalPolicy, risk_level: str, requested_by: User | None
) -> bool:
    """Whether an auto-approval rule may approve a new request of ``risk_level`` at all.

    Never a critical request (always an admin's), never further than the levels operators
    may decide, and a person's own request no further than low risk, so that nobody gets their
    own risky request approved by a rule they set."""
    if risk_level == RiskLevel.CRITICAL or policy.role_for(risk_level) == DeciderRole.ADMIN:
        return False
    return requested_by is None or risk_level == RiskLevel.LOW


def auto_approval_rule(
    *,
    policy: ApprovalPolicy,
    risk_level: str,
    context: dict[str, Any],
    requested_by: User | None = None,
) -> str | None:
    """The rule that approves a new request at once, told in words, or None."""
    if not policy.auto_approve_enabled:
        return None
    if RISK_ORDER.index(RiskLevel(risk_level)) > RISK_ORDER.index(
        RiskLevel(policy.auto_approve_max_risk)
    ):
        return None
    if not _rule_may_approve(policy=policy, risk_level=risk_level, requested_by=requested_by):
        return None
    rule = f"risk {risk_level} is at most {policy.auto_approve_max_risk}"
    if policy.auto_approve_max_cost is None:
        return rule
    cost = _cost(context.get("cost"))
    if cost is None or cost > policy.auto_approve_max_cost:
        return None
    return f"{rule} and cost {_number(cost)} is at most {_number(policy.auto_approve_max_cost)}"


def _number(value: Decimal) -> str:
    return f"{value.normalize():f}"


def _cost(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        cost = Decimal(str(value))
    except InvalidOperation:
        return None
    return cost if cost.is_finite() and cost >= 0 else None


# --- requests and decisions ----------------------------------------------------------------------


def approval_request_create(
    *,
    kind: str,
    action: str,
    reference: str = "",
    risk_level: str = RiskLevel.MEDIUM,
    context: dict[str, Any] | None = None,
    requested_by: User | None = None,
    expires_in_seconds: float | None = None,
) -> ApprovalRequest:
    """Ask for a decision. It expires after ``expires_in_seconds`` (the policy's default when
    None). The returned request may already be approved: by an auto-approval rule, or because
    human-in-the-loop is off; ``approval_decided`` was then sent in this transaction."""
    if risk_level not in RiskLevel.values:
        raise ValidationError({"risk_level": f"One of: {', '.join(RiskLevel.values)}."})
    if not kind.strip():
        raise ValidationError({"kind": "Say what asks (e.g. build_step)."})
    if not action.strip():
        raise ValidationError({"action": "Say what would be done."})
    if context is not None and not isinstance(context, dict):
        raise ValidationError({"context": "An object."})
    if expires_in_seconds is not None and not expires_in_seconds > 0:
        raise ValidationError({"expires_in_seconds": "More than 0."})
    policy = approval_policy()
    seconds = expires_in_seconds or policy.expiry_seconds
    with transaction.atomic():
        approval = ApprovalRequest.objects.create(
            kind=kind,
            action=action,
            reference=reference,
            risk_level=risk_level,
            context=context or {},
            requested_by=requested_by,
            required_role=policy.role_for(risk_level),
            expires_at=timezone.now() + timedelta(seconds=seconds),
        )
        _audit(approval, AuditEvent.REQUESTED, requested_by)
        rule = auto_approval_rule(
            policy=policy,
            risk_level=risk_level,
            context=approval.context,
            requested_by=requested_by,
        )
        if not policy.enabled and risk_level != RiskLevel.CRITICAL:
            _settle(approval, ApprovalStatus.APPROVED, None, HITL_OFF_NOTE)
        elif rule is not None:
            _settle(approval, ApprovalStatus.APPROVED, None, f"Auto-approved by rule: {rule}.")
        else:
            _announce(approval)
    return approval


def approval_decide(
    *, approval: ApprovalRequest, decision: str, by: User, notes: str = ""
) -> ApprovalRequest:
    """Approve or reject, as the policy allows ``by`` (``PermissionDenied`` otherwise, saying
    why). A request no longer pending is refused (``ValidationError`` naming no field); one past
    its time is expired now, by the policy's outcome on expiry, and the decision refused."""
    if decision not in DECISIONS:
        raise ValidationError({"decision": "Either approved or rejected."})
    with transaction.atomic():
        approval = ApprovalRequest.objects.select_for_update().get(pk=approval.pk)
        refusal = approval_refusal(approval=approval, user=by)
        if refusal is not None:
            raise PermissionDenied(refusal)
        _check_pending(approval)
        late = approval.expires_at is not None and approval.expires_at <= timezone.now()
        if late:
            _expire(approval, approval_policy())
        else:
            _settle(approval, decision, by, notes, self_decided=_own(approval, by))
    if late:
        raise ValidationError(
            f"This request expired at {approval.expires_at:%Y-%m-%d %H:%M:%S %Z} before the "
            f"decision came: it is {approval.status} now."
        )
    return approval


def approvals_expire_overdue() -> int:
    """Settle every pending request past its time (run by Celery beat) by the policy's
    outcome on expiry: expired (what waits on it fails) or approved. Returns how many."""
    policy = approval_policy()
    expired = 0
    overdue = ApprovalRequest.objects.filter(
        status=ApprovalStatus.PENDING, expires_at__lte=timezone.now()
    ).values_list("pk", flat=True)
    for pk in overdue:
        with transaction.atomic():
            approval = ApprovalRequest.objects.select_for_update().get(pk=pk)
            if approval.status == ApprovalStatus.PENDING:
                _expire(approval, policy)
                expired += 1
    return expired


def approvals_escalate_overdue() -> int:
    """Escalate, once, every request still pending ``escalation_seconds`` after it was asked
    (run by Celery beat): an admin alone may decide it from now on, and admins hear of it
    (``approval.escalated``). Returns how many."""
    policy = approval_policy()
    if not policy.escalation_seconds:
        return 0
    cutoff = timezone.now() - timedelta(seconds=policy.escalation_seconds)
    due = ApprovalRequest.objects.filter(
        status=ApprovalStatus.PENDING, escalated_at__isnull=True, created_at__lte=cutoff
    ).values_list("pk", flat=True)
    escalated = 0
    for pk in due:
        with transaction.atomic():
            approval = ApprovalRequest.objects.select_for_update().get(pk=pk)
            if approval.status != ApprovalStatus.PENDING or approval.escalated_at is not None:
                continue
            approval.required_role = DeciderRole.ADMIN
            approval.escalated_at = timezone.now()
            approval.save(update_fields=["required_role", "escalated_at"])
            waited = int((approval.escalated_at - approval.created_at).total_seconds())
            _audit(
                approval,
                AuditEvent.ESCALATED,
                None,
                f"Escalated to admin: pending for {waited} s, longer than the policy's "
                f"{policy.escalation_seconds} s.",
            )
            publish_on_commit(
                "approvals",
                "approval.escalated",
                {
                    **_event_data(approval),
                    "waited_seconds": waited,
                },
            )
            escalated += 1
    return escalated


# --- settling ------------------------------------------------------------------------------------


def _check_pending(approval: ApprovalRequest) -> None:
    if approval.status != ApprovalStatus.PENDING:
        raise ValidationError(f"This request was already {approval.status}.")


def _expire(approval: ApprovalRequest, policy: ApprovalPolicy) -> None:
    if policy.expiry_outcome == ExpiryOutcome.APPROVE:
        _settle(approval, ApprovalStatus.APPROVED, None, EXPIRED_APPROVED_NOTE)
    else:
        _settle(approval, ApprovalStatus.EXPIRED, None, EXPIRED_NOTE)


def _settle(
    approval: ApprovalRequest,
    status: str,
    by: User | None,
    notes: str,
    *,
    self_decided: bool = False,
) -> None:
    _check_pending(approval)
    approval.status = status
    approval.decided_by = by
    approval.decision_notes = notes
    approval.decided_at = timezone.now()
    approval.self_decided = self_decided
    approval.save(
        update_fields=["status", "decided_by", "decision_notes", "decided_at", "self_decided"]
    )
    trail_notes = " ".join(filter(None, [SELF_DECIDED_NOTE if self_decided else "", notes]))
    _audit(approval, status, by, trail_notes)
    approval_decided.send(sender=ApprovalRequest, approval=approval)
    _announce(approval)


def _audit(approval: ApprovalRequest, event: str, actor: User | None, notes: str = "") -> None:
    ApprovalAuditEntry.objects.create(approval=approval, event=event, actor=actor, notes=notes)


def _event_data(approval: ApprovalRequest) -> dict[str, Any]:
    return {
        "id": approval.pk,
        "kind": approval.kind,
        "status": approval.status,
        "risk_level": approval.risk_level,
        "reference": approval.reference,
        "required_role": approval.required_role,
    }


def _announce(approval: ApprovalRequest) -> None:
    publish_on_commit("approvals", "approval.updated", _event_data(approval))
