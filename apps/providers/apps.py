from django.apps import AppConfig
from django.http import HttpRequest

# What other apps may import of this app: the LLM core's face (apps.providers.llm, its
# __init__) and the Django surface (tests/core/test_structure.py holds every app to its face).
PUBLIC = frozenset({"crypto", "llm", "models", "selectors", "services"})


def refused_records_badge(request: HttpRequest) -> str | None:
    """The sidebar's count of call records the database refused (waiting for a decision)."""
    from .models import CallRecordDeadLetter

    count = CallRecordDeadLetter.objects.count()
    return str(count) if count else None


class ProvidersConfig(AppConfig):
    name = "apps.providers"
    label = "providers"
    verbose_name = "Providers and LLM calls"

    def ready(self) -> None:
        from celery.signals import worker_process_shutdown

        from apps.core.events import register_event_types
        from apps.core.pools import register_pool_source
        from apps.core.registry import NavItem, register_navigation, register_operator_models

        from . import checks, signals  # noqa: F401  (health check, config version receivers)
        from .events import EVENT_TYPES
        from .llm.recording.recorder import recorder
        from .llm.transport.transports import http_pools

        register_event_types(*EVENT_TYPES)
        register_pool_source("http", http_pools)
        register_operator_models(self.label, "provider", "llmmodel", "routingsettings")
        register_navigation(
            NavItem("Providers", "admin:providers_provider_changelist", "LLM core", icon="dns",
                    permission="providers.view_provider", order=10),
            NavItem("Models", "admin:providers_llmmodel_changelist", "LLM core",
                    icon="smart_toy", permission="providers.view_llmmodel", order=20),
            NavItem("Routing settings", "admin:providers_routingsettings_changelist",
                    "LLM core", icon="alt_route", permission="providers.view_routingsettings",
                    order=30),
            NavItem("Calls", "admin:providers_llmcall_changelist", "LLM core",
                    icon="receipt_long", permission="providers.view_llmcall", order=40),
            NavItem("Refused call records", "admin:providers_callrecorddeadletter_changelist",
                    "LLM core", icon="report", permission="providers.view_callrecorddeadletter",
                    order=50, badge=refused_records_badge),
        )  # fmt: skip
        worker_process_shutdown.connect(
            lambda **kwargs: recorder.close(), weak=False, dispatch_uid="providers.recorder"
        )
