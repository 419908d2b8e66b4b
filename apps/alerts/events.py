"""The live events of alerts, on the ``alerts`` channel (``alert.raised`` is the core's)."""

from apps.core.events import EventType, FieldTypes

FIELDS: dict[str, FieldTypes] = {
    "id": int, "cause": str, "kind": str, "title": str, "detail": str, "severity": str,
    "status": str,
}  # fmt: skip

EVENT_TYPES = (
    EventType(
        "alert.resolved", "alerts", FIELDS,
        "An alert's cause is gone (the health check passes again, the threshold is no longer "
        "crossed).",
    ),
    EventType(
        "alert.acknowledged", "alerts", {**FIELDS, "acknowledged_by": str},
        "An operator acknowledged an open alert: someone is on it.",
    ),
)  # fmt: skip
