from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        from .events import Channel, EventType, register_channels, register_event_types

        register_channels(
            Channel("alerts", "Operator-facing alerts: circuits opening and closing, failures."),
            Channel("metrics", "Live figures: provider probes, request counts."),
            Channel("logs", "The platform's log lines worth watching."),
        )
        register_event_types(
            EventType(
                "alert.raised", "alerts", {"title": str, "severity": str},
                "An operator-facing alert.",
            ),
            EventType(
                "log.record", "logs", {"level": str, "logger": str, "message": str},
                "A log line worth watching.",
            ),
        )  # fmt: skip
