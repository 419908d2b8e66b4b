from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "apps.approvals"
    label = "approvals"
    verbose_name = "Approvals"

    def ready(self) -> None:
        from apps.core.events import register_channels, register_event_types
        from apps.core.registry import NavItem, register_navigation

        from .events import CHANNELS, EVENT_TYPES

        register_channels(*CHANNELS)
        register_event_types(*EVENT_TYPES)
        register_navigation(
            NavItem("Approvals", "admin:approvals_approvalrequest_changelist", "Builds",
                    icon="approval", permission="approvals.view_approvalrequest", order=40),
        )  # fmt: skip
