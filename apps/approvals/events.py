"""The live events of approval requests."""

from apps.core.events import Channel, EventType, FieldTypes

CHANNELS = (Channel("approvals", "Approval requests: new, decided, expired, escalated."),)

FIELDS: dict[str, FieldTypes] = {
    "id": int, "kind": str, "status": str, "risk_level": str, "reference": str,
    "required_role": str,
}  # fmt: skip

EVENT_TYPES = (
    EventType(
        "approval.updated", "approvals", FIELDS,
        "An approval request was made, decided or expired; required_role is the weakest role "
        "that may decide it.",
    ),
    EventType(
        "approval.escalated", "approvals", {**FIELDS, "waited_seconds": int},
        "A request still pending after the policy's escalation time, announced once more: "
        "from now on only an admin (required_role) decides it.",
    ),
)  # fmt: skip
