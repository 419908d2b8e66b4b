from django.apps import AppConfig

PUBLIC = frozenset({"models", "selectors", "services"})


class AlertsConfig(AppConfig):
    """Alerts raised and resolved after each periodic health run (failing checks and the
    registered thresholds), acknowledged by operators, and sent to the notification channels
    admins configure."""

    name = "apps.alerts"
    label = "alerts"
    verbose_name = "Alerts"

    def ready(self) -> None:
        from apps.core.events import register_event_types
        from apps.core.health import health_ran
        from apps.core.registry import (
            NavItem,
            Page,
            register_alert_rule,
            register_navigation,
            register_pages,
        )

        from .events import EVENT_TYPES
        from .pages import open_count_badge
        from .rules import RULES
        from .services import health_ran_receiver

        register_event_types(*EVENT_TYPES)
        register_alert_rule(*RULES)
        health_ran.connect(health_ran_receiver, dispatch_uid="alerts.evaluate")
        register_pages(
            Page(
                "alert-list",
                "Alerts",
                "apps.alerts.pages.alerts",
                "System",
                icon="notifications",
                permission="alerts.view_alert",
                order=900,
                badge=open_count_badge,
                urls=("<int:pk>/acknowledge/",),
            ),
        )
        register_navigation(
            NavItem(
                "Notification channels",
                "admin:alerts_notificationchannel_changelist",
                "System",
                icon="campaign",
                permission="alerts.view_notificationchannel",
                order=905,
            ),
        )
