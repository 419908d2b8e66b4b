"""The live events the LLM core publishes."""

from apps.core.events import EventType

EVENT_TYPES = (
    EventType(
        "circuit.opened", "alerts", {"provider": str, "error": str},
        "A provider's circuit opened: requests skip it until a probe succeeds.",
    ),
    EventType("circuit.closed", "alerts", {"provider": str}, "A provider's circuit closed."),
    EventType(
        "provider.health", "metrics",
        {"provider": str, "status": str, "latency_ms": (int, float)},
        "A provider health probe finished.",
    ),
)  # fmt: skip
