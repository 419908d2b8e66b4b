from django.apps import AppConfig

# What other apps may import of this app: the core is below every app and most of it is the
# shared plumbing they plug into (tests/core/test_structure.py holds every app to its face).
PUBLIC = frozenset(
    {
        "admin_support",
        "aggregates",
        "api.shortcuts",
        "beat",
        "cors",
        "crypto",
        "database",
        "dispatch",
        "environment",
        "errors",
        "events",
        "filters",
        "health",
        "http",
        "http_metrics",
        "ids",
        "json",
        "limits",
        "logging",
        "metrics",
        "models",
        "platform_settings",
        "pools",
        "process_report",
        "redis",
        "registry",
        "request_context",
        "runtime",
        "services",
        "tracing",
    }
)
PUBLIC_TEMPLATES = frozenset({"core/live_page.html"})
PUBLIC_STATIC = frozenset({"core/live.js"})


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        from celery.signals import after_setup_logger, beat_init, worker_init, worker_process_init
        from django.core import checks

        from . import asyncio_backport
        from .async_middleware import security_checks
        from .events import Channel, EventType, register_channels, register_event_types
        from .logging import live_handler_attach
        from .loop_lag import watch_runtime_loops
        from .platform_settings import start_settings_follower
        from .pools import database_pools, redis_pools, register_pool_source
        from .registry import NavItem, register_navigation, register_operator_models

        asyncio_backport.install()
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
        register_operator_models(self.label, "platformsettings")
        checks.register(security_checks, checks.Tags.security, deploy=True)
        register_pool_source("database", database_pools)
        register_pool_source("redis", redis_pools)
        register_navigation(
            NavItem(
                "Platform settings",
                "admin:core_platformsettings_changelist",
                "System",
                icon="settings",
                permission="core.view_platformsettings",
                order=990,
            ),
        )
        # Each Celery process follows the platform settings (the web's ASGI application starts
        # its follower on its first event, see orchestra/asgi.py).
        for signal in (worker_init, worker_process_init, beat_init):
            signal.connect(
                lambda **kwargs: start_settings_follower(),
                weak=False,
                dispatch_uid=f"core.settings.{signal.name}",
            )
        # A worker's loop for async work (the WebSocket LLM calls) is watched for lag; the web's
        # loop is, from its first event (orchestra/asgi.py).
        worker_init.connect(
            lambda **kwargs: watch_runtime_loops("worker"),
            weak=False,
            dispatch_uid="core.loop_lag.worker_init",
        )
        # A Celery worker replaces the root logger's handlers: the live log joins it again.
        after_setup_logger.connect(live_handler_attach, dispatch_uid="core.live_log")
