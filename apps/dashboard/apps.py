from django.apps import AppConfig

# What other apps may use of this app: the template tags and the includes of a live page
# (the WebSocket client, the header's connection state), the pager
# (tests/core/test_structure.py holds every app to its face).
PUBLIC = frozenset({"templatetags.dashboard"})
PUBLIC_TEMPLATES = frozenset({"dashboard/includes/pages.html"})


class DashboardConfig(AppConfig):
    """The browser dashboard: the admin site (``sites.py``), its sidebar (``navigation.py``),
    Home's figures (``figures.py``, published by ``tasks.py``) and the pages it owns (the
    circuit breakers, the Playground)."""

    name = "apps.dashboard"
    label = "dashboard"
    verbose_name = "Dashboard"

    def ready(self) -> None:
        from apps.core.events import register_event_types
        from apps.core.registry import NavItem, Page, register_navigation, register_pages

        from .events import EVENT_TYPES
        from .views import LOGS_PERMISSION

        register_event_types(*EVENT_TYPES)
        register_navigation(
            NavItem("Home", "admin:index", "Dashboard", icon="home", order=0),
            NavItem("Scheduled tasks", "admin:django_celery_beat_periodictask_changelist",
                    "System", icon="schedule", permission="django_celery_beat.view_periodictask",
                    order=1000),
        )  # fmt: skip
        register_pages(
            Page("playground", "Playground", "apps.dashboard.playground.playground", "Dashboard",
                 icon="chat", permission="providers.view_llmmodel", order=5),
            Page("config", "Providers and routing", "apps.dashboard.views.config", "LLM core",
                 icon="tune", permission="providers.view_provider", order=5),
            Page("circuits", "Circuit breakers", "apps.dashboard.views.circuits", "LLM core",
                 icon="electrical_services", permission="providers.view_provider", order=35),
            Page("logs", "Logs", "apps.dashboard.views.logs", "System", icon="terminal",
                 permission=LOGS_PERMISSION, order=980),
        )  # fmt: skip
