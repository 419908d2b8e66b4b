"""The live events of approval requests."""

from apps.core.events import Channel, EventType

CHANNELS = (Channel("approvals", "Approval requests: new, decided, expired."),)

EVENT_TYPES = (
    EventType(
        "approval.updated", "approvals",
        {"id": int, "kind": str, "status": str, "risk_level": str, "reference": str},
        "An approval request was made, decided or expired.",
    ),
)  # fmt: skip
