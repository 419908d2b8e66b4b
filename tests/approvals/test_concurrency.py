"""Two people deciding one request at the same moment, each in their own thread and database
connection against PostgreSQL: exactly one decision is recorded, the other is refused."""

from __future__ import annotations

import threading
import time

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from apps.accounts.models import Role
from apps.approvals.models import ApprovalAuditEntry, ApprovalRequest, ApprovalStatus
from apps.approvals.services import approval_decide
from apps.approvals.signals import approval_decided
from tests.approvals.conftest import request_made
from tests.support.factories import user_create

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def slow_receivers():
    """A receiver of ``approval_decided`` that takes its time, as a busy one would: whoever
    settles first holds the request's row a while, so the other decision surely comes while
    the first is not yet committed."""

    def linger(sender, approval, **kwargs) -> None:
        time.sleep(0.4)

    approval_decided.connect(linger, dispatch_uid="tests.linger")
    yield
    approval_decided.disconnect(dispatch_uid="tests.linger")


@pytest.mark.parametrize("decisions", [("approved", "rejected"), ("approved", "approved")])
def test_two_concurrent_decisions_leave_exactly_one(decisions, slow_receivers):
    asker = user_create(role=Role.OPERATOR)
    ann, bob = user_create(role=Role.OPERATOR), user_create(role=Role.ADMIN)
    approval = request_made(requested_by=asker)
    # Each holds the request as they saw it: pending.
    copies = [ApprovalRequest.objects.get(pk=approval.pk) for _ in range(2)]
    start = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def decide(user, copy, decision) -> None:
        try:
            start.wait(5)
            approval_decide(approval=copy, decision=decision, by=user, notes=user.username)
            outcomes[user.username] = "decided"
        except ValidationError as error:
            outcomes[user.username] = " ".join(error.messages)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=decide, args=(user, copy, decision))
        for user, copy, decision in zip((ann, bob), copies, decisions, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)

    approval.refresh_from_db()
    winner = approval.decided_by
    assert winner in (ann, bob)
    loser = bob if winner == ann else ann
    assert outcomes == {
        winner.username: "decided",
        loser.username: f"This request was already {approval.status}.",
    }
    assert approval.decision_notes == winner.username
    assert approval.status == dict(zip((ann, bob), decisions, strict=True))[winner]
    entries = ApprovalAuditEntry.objects.filter(approval=approval).exclude(event="requested")
    assert [(e.event, e.actor) for e in entries] == [(approval.status, winner)]
    assert approval.status in (ApprovalStatus.APPROVED, ApprovalStatus.REJECTED)
