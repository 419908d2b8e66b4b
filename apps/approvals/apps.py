from django.apps import AppConfig

# What other apps may import of this app (tests/core/test_structure.py holds every app to its
# face).
PUBLIC = frozenset({"decisions", "models", "selectors", "services", "signals"})


class ApprovalsConfig(AppConfig):
    name = "apps.approvals"
    label = "approvals"
    verbose_name = "Approvals"

    def ready(self) -> None:
        from apps.core.events import register_channels, register_event_types
        from apps.core.registry import (
            Feature,
            NavItem,
            Page,
            register_feature,
            register_navigation,
            register_pages,
        )

        from .events import CHANNELS, EVENT_TYPES
        from .pages import pending_count
        from .selectors import hitl_enabled

        register_channels(*CHANNELS)
        register_event_types(*EVENT_TYPES)
        register_feature(
            Feature(
                "hitl",
                "Human-in-the-loop approvals: gated actions wait for a person's "
                "decision (off: they are approved at once).",
                hitl_enabled,
            ),
        )
        register_navigation(
            NavItem(
                "Approvals",
                "admin:approvals_approvalrequest_changelist",
                "Builds",
                icon="approval",
                permission="approvals.view_approvalrequest",
                order=40,
            ),
        )
        register_pages(
            Page(
                "approval-queue",
                "Approval queue",
                "apps.approvals.pages.approvals",
                "Builds",
                icon="fact_check",
                permission="approvals.view_approvalrequest",
                order=39,
                badge=pending_count,
            ),
        )
