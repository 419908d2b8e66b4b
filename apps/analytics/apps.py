from django.apps import AppConfig

PUBLIC = frozenset({"selectors"})


class AnalyticsConfig(AppConfig):
    """Spend and usage analytics: hourly rollups of the LLM call records, kept equal to them
    (``services``), and the analytics API read from the rollups and the raw records
    (``selectors``)."""

    name = "apps.analytics"
    label = "analytics"
    verbose_name = "Analytics"

    def ready(self) -> None:
        from apps.core.registry import register_call_record_hook

        from .services import hours_mark

        register_call_record_hook("analytics.hours", hours_mark)
