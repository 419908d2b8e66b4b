"""A decision posted from a page (the approval queue, a build's page): who may decide, what the
person is told."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest

from apps.accounts.permissions import OPERATE

from .models import ApprovalRequest
from .services import approval_decide

MAX_NOTES = 2000


def approval_decide_posted(request: HttpRequest, approval: ApprovalRequest) -> bool:
    """Decide ``approval`` as the POST says (``decision``: approved or rejected, ``notes``),
    the outcome told as a message; whether it was decided."""
    if not request.user.has_perm(OPERATE):
        raise PermissionDenied("Deciding an approval needs the operator role.")
    user = request.user
    assert isinstance(user, User)  # the admin site lets no one else in
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
