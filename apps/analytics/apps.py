from django.apps import AppConfig

PUBLIC = frozenset({"selectors"})


class AnalyticsConfig(AppConfig):
    """Spend and usage analytics: hourly rollups of the LLM call records, kept equal to them
    (``services``), and the analytics API read from the rollups and the raw records
    (``selectors``), and the Analytics page (``pages``)."""

    name = "apps.analytics"
    label = "analytics"
    verbose_name = "Analytics"

    def ready(self) -> None:
        from apps.core.registry import Page, register_call_record_hook, register_pages

        from .services import hours_mark

        register_call_record_hook("analytics.hours", hours_mark)
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
