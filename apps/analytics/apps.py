from typing import Any

from django.apps import AppConfig

PUBLIC = frozenset({"selectors"})


def key_spend(api_key: Any) -> str:
    from .selectors import spend_this_month

    return f"${spend_this_month(key=api_key.pk):.4f}"


def user_spend(user: Any) -> str:
    from .selectors import spend_this_month

    return f"${spend_this_month(user=user.pk):.4f}"


class AnalyticsConfig(AppConfig):
    """Spend and usage analytics: hourly rollups of the LLM call records, kept equal to them
    (``services``), and the analytics API read from the rollups and the raw records
    (``selectors``), and the Analytics page (``pages``)."""

    name = "apps.analytics"
    label = "analytics"
    verbose_name = "Analytics"

    def ready(self) -> None:
        from apps.core.registry import (
            ObjectFigure,
            Page,
            register_call_counts,
            register_call_record_hook,
            register_object_figure,
            register_pages,
        )

        from .selectors import calls_per_period
        from .services import hours_mark

        register_call_record_hook("analytics.hours", hours_mark)
        register_call_counts("analytics.calls", calls_per_period)
        register_pages(
            # /admin/analytics/ is the admin's (every app label is reserved): another slug.
            Page(
                "usage-analytics",
                "Analytics",
                "apps.analytics.pages.analytics",
                "Dashboard",
                icon="monitoring",
                permission="providers.view_llmcall",
                order=3,
            ),
        )
        # The API key's and the user's admin pages show what they spent this month.
        register_object_figure(
            "analytics.key-spend",
            ObjectFigure(
                "accounts.apikey",
                "Spend this month",
                key_spend,
            ),
        )
        register_object_figure(
            "analytics.user-spend",
            ObjectFigure(
                "auth.user",
                "Spend this month",
                user_spend,
            ),
        )
