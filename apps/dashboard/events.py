"""The live events the dashboard publishes."""

from apps.core.events import EventType

FIGURES = "dashboard.figures"

EVENT_TYPES = (
    EventType(
        FIGURES,
        "metrics",
        {
            "at": str,
            "windows": dict,
            "active_streams": dict,
            "open_circuits": list,
            "health": dict,
            "display": dict,
        },
        "Home's figures, every few seconds: requests, tokens, cost, error rate and p50/p95 "
        "latency of the last hour and day (windows), active streams by entry point, open "
        "circuits, each health check; display holds each figure as the page shows it.",
    ),
)
