"""The approval queue: requests waiting for a person, each with its risk, context, requester
and a countdown to its expiry, decided here (or on a build's page, which uses
``approval_decide_posted``) by whoever the policy allows; the latest decisions and the figures.

The page follows the ``approvals`` channel: on each event it fetches its live part again
(``?part=live``) and adds the new requests' cards, drops the decided ones and redraws the
history and the figures, leaving alone the cards someone may be typing notes in.

Deciding goes through ``approval_decide``: a refusal of the policy, or a request decided
meanwhile, is shown as a message, not an error page.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse

from apps.accounts.permissions import OPERATE

from .decisions import approval_decide_posted
from .models import ApprovalPolicy, ApprovalRequest, DeciderRole, RiskLevel
from .selectors import (
    approval_decided_list,
    approval_pending_count,
    approval_pending_list,
    approval_policy,
    approval_stats,
)
from .services import approval_refusal

DECIDED_SHOWN = 20
PENDING_SHOWN = 100
RISK_TONES = {
    RiskLevel.LOW: "info",
    RiskLevel.MEDIUM: "warning",
    RiskLevel.HIGH: "error",
    RiskLevel.CRITICAL: "critical",
}


def pending_count(request: HttpRequest) -> str | None:
    """The sidebar badge: how many requests wait."""
    count = approval_pending_count()
    return str(count) if count else None


def subject_url(approval: ApprovalRequest) -> str:
    """The page of what the request is about (a build's, for a build step), or ''."""
    build = (approval.context or {}).get("build")
    if approval.kind != "build_step" or not isinstance(build, int):
        return ""
    try:
        return reverse("admin:page-build-1", args=[build])
    except NoReverseMatch:
        return ""


def context_items(context: Any) -> list[tuple[str, str]]:
    """A request's context as (key, text) pairs: plain values as they are, others as JSON."""
    if not isinstance(context, dict):
        return [("context", json.dumps(context, ensure_ascii=False))]
    return [
        (str(key), value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
        for key, value in context.items()
    ]


def duration_words(seconds: float | None) -> str:
    """The first unit that is not zero and the next one unless zero: ``95`` → ``1 min 35 s``,
    ``7200`` → ``2 h``."""
    if seconds is None:
        return "—"
    left = int(round(seconds))
    parts: list[str] = []
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min"), (1, "s")):
        amount, left = divmod(left, size)
        if amount and len(parts) < 2:
            parts.append(f"{amount} {unit}")
        elif parts:
            break
    return " ".join(parts) or "0 s"


def policy_summary(policy: ApprovalPolicy) -> dict[str, Any]:
    """The policy in words, for the page's header."""
    names = dict(DeciderRole.choices)
    deciders = {level: names[policy.role_for(level)].lower() + "s" for level in RiskLevel.values}
    rule = ""
    if policy.auto_approve_enabled:
        rule = f"risk up to {policy.auto_approve_max_risk}"
        if policy.auto_approve_max_cost is not None:
            rule += f" and a cost up to {policy.auto_approve_max_cost.normalize():f}"
    return {
        "enabled": policy.enabled,
        "self_approval": policy.self_approve_low_risk,
        "deciders": deciders,
        "auto_rule": rule,
        "expiry": duration_words(policy.expiry_seconds),
        "expiry_outcome": policy.expiry_outcome,
        "escalation": duration_words(policy.escalation_seconds)
        if policy.escalation_seconds
        else "",
    }


def _decider(request: HttpRequest) -> User | None:
    """The person with their groups loaded once, for the policy's check of every card."""
    if not isinstance(request.user, User) or not request.user.has_perm(OPERATE):
        return None
    return User.objects.prefetch_related("groups").get(pk=request.user.pk)


def _card(request: HttpRequest, approval: ApprovalRequest, decider: User | None) -> dict:
    refusal = approval_refusal(approval=approval, user=decider) if decider else None
    own = approval.requested_by_id is not None and approval.requested_by_id == request.user.pk
    return {
        "approval": approval,
        "subject_url": subject_url(approval),
        "context": context_items(approval.context),
        "risk_tone": RISK_TONES.get(RiskLevel(approval.risk_level), ""),
        "can_decide": decider is not None and refusal is None,
        "own": own,
        "refusal": refusal or "Operators and admins decide these.",
        "version": f"{approval.required_role}:{approval.escalated_at is not None}",
    }


def _live(request: HttpRequest) -> dict[str, Any]:
    decider = _decider(request)
    pending = approval_pending_list()
    stats = approval_stats()
    return {
        "pending": [_card(request, approval, decider) for approval in pending[:PENDING_SHOWN]],
        "pending_count": stats["by_status"]["pending"],
        "decided": [
            {"approval": approval, "subject_url": subject_url(approval)}
            for approval in approval_decided_list()[:DECIDED_SHOWN]
        ],
        "stats": stats,
        "median": duration_words(stats["median_seconds_to_decision"]),
    }


def approvals(request: HttpRequest) -> HttpResponse:
    """The queue (``?part=live``: only its live part, for the page's script); a POST
    decides."""
    if request.method == "POST":
        if not request.user.has_perm(OPERATE):
            raise PermissionDenied("Deciding an approval needs the operator role.")
        approval = get_object_or_404(ApprovalRequest, pk=request.POST.get("approval") or 0)
        approval_decide_posted(request, approval)
        return HttpResponseRedirect(reverse("admin:page-approval-queue"))
    if request.GET.get("part") == "live":
        return render(request, "approvals/includes/live.html", _live(request))
    return TemplateResponse(
        request,
        "approvals/queue.html",
        {
            **_live(request),
            "policy": policy_summary(approval_policy()),
            "live_url": reverse("admin:page-approval-queue") + "?part=live",
            "live_channels": "approvals",
        },
    )
