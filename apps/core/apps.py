from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        from celery.signals import after_setup_logger

        from .events import Channel, EventType, register_channels, register_event_types
        from .logging import live_handler_attach

        register_channels(
            Channel("alerts", "Operator-facing alerts: circuits opening and closing, failures."),
            Channel("metrics", "Live figures: provider probes, request counts."),
            Channel("logs", "The platform's log lines worth watching.", operators_only=True),
        )
        register_event_types(
            EventType(
                "alert.raised", "alerts", {"title": str, "severity": str},
                "An operator-facing alert.",
            ),
            EventType(
                "log.record", "logs",
                {"at": str, "level": str, "logger": str, "message": str, "request_id": str},
                "A log line at or above LOG_LIVE_LEVEL (WARNING) from any process, secrets "
                "redacted; the Logs page shows it.",
            ),
        )  # fmt: skip
        # A Celery worker replaces the root logger's handlers: the live log joins it again.
        after_setup_logger.connect(live_handler_attach, dispatch_uid="core.live_log")
