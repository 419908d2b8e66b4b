"""Helpers of the approvals' tests: a request made the way a caller makes one, and people."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from apps.accounts.models import Role
from apps.agents.models import Agent
from apps.approvals.models import ApprovalRequest, RiskLevel
from apps.approvals.services import approval_request_create
from apps.core.events import group_name


def request_made(**fields: Any) -> ApprovalRequest:
    return approval_request_create(
        **{"kind": "refund", "action": "Refund $500", "risk_level": RiskLevel.HIGH, **fields}
    )


def trail(approval: ApprovalRequest) -> list[str]:
    return list(approval.audit.order_by("created_at", "id").values_list("event", flat=True))


ROLES = [None, Role.VIEWER, Role.OPERATOR, Role.ADMIN]


@pytest.fixture
def planner(two_providers) -> Agent:
    """An agent on public model ``chat``, which routing sends to upstream ``a``."""
    return Agent.objects.create(name="planner", role="planner", model="chat")


class Listener:
    """A subscriber of the ``approvals`` channel on the real channel layer, as ``/ws/``
    consumers are: what the bus publishes there arrives here."""

    def __init__(self) -> None:
        self.layer = get_channel_layer()
        self.channel = async_to_sync(self.layer.new_channel)()
        async_to_sync(self.layer.group_add)(group_name("approvals"), self.channel)

    def next(self, timeout: float = 5.0) -> dict[str, Any]:
        async def receive() -> dict[str, Any]:
            return await asyncio.wait_for(self.layer.receive(self.channel), timeout)

        return async_to_sync(receive)()

    def close(self) -> None:
        async_to_sync(self.layer.group_discard)(group_name("approvals"), self.channel)


@pytest.fixture
def listener() -> Iterator[Listener]:
    heard = Listener()
    yield heard
    heard.close()
