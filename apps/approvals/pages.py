"""The approval queue: requests waiting for a person, decided here (or on a build's page, which
uses ``approval_decide_posted``) by an operator who did not ask for them.

Deciding goes through ``approval_decide``, which refuses a person's own request and a critical
one to anyone but an admin: such a refusal, or a request decided meanwhile, is shown as a
message, not an error page.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse

from apps.accounts.permissions import OPERATE

from .models import ApprovalRequest, ApprovalStatus
from .services import approval_decide

DECIDED_SHOWN = 20
MAX_NOTES = 2000


def approval_decide_posted(request: HttpRequest, approval: ApprovalRequest) -> bool:
    """Decide ``approval`` as the POST says (``decision``: approved or rejected, ``notes``),
    the outcome told as a message; whether it was decided."""
    if not request.user.has_perm(OPERATE):
        raise PermissionDenied("Deciding an approval needs the operator role.")
    user = request.user
    assert user.is_authenticated  # the admin site lets no one else in
    decision = request.POST.get("decision", "")
    notes = request.POST.get("notes", "").strip()[:MAX_NOTES]
    try:
        approval = approval_decide(approval=approval, decision=decision, by=user, notes=notes)
    except (PermissionDenied, ValidationError) as error:
        text = " ".join(error.messages) if isinstance(error, ValidationError) else str(error)
        messages.error(request, f"Not decided: {text}")
        return False
    messages.success(request, f"{approval.get_status_display()}: {approval.action}")
    return True


def pending_count(request: HttpRequest) -> str | None:
    """The sidebar badge: how many requests wait."""
    count = ApprovalRequest.objects.filter(status=ApprovalStatus.PENDING).count()
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


def _row(request: HttpRequest, approval: ApprovalRequest) -> dict[str, Any]:
    own = approval.requested_by_id is not None and approval.requested_by_id == request.user.pk
    return {"approval": approval, "subject_url": subject_url(approval), "own": own}


def approvals(request: HttpRequest) -> HttpResponse:
    """Pending requests, oldest first, each with its decision form; the latest decided."""
    if request.method == "POST":
        if not request.user.has_perm(OPERATE):
            raise PermissionDenied("Deciding an approval needs the operator role.")
        approval = get_object_or_404(ApprovalRequest, pk=request.POST.get("approval") or 0)
        approval_decide_posted(request, approval)
        return HttpResponseRedirect(reverse("admin:page-approval-queue"))
    requests = ApprovalRequest.objects.select_related("requested_by", "decided_by")
    pending = requests.filter(status=ApprovalStatus.PENDING).order_by("created_at", "pk")
    decided = requests.exclude(status=ApprovalStatus.PENDING).order_by("-decided_at", "-pk")
    return TemplateResponse(
        request,
        "approvals/queue.html",
        {
            "pending": [_row(request, approval) for approval in pending[:100]],
            "pending_count": pending.count(),
            "decided": [_row(request, approval) for approval in decided[:DECIDED_SHOWN]],
            "can_decide": request.user.has_perm(OPERATE),
            "live_channels": "approvals",
        },
    )
