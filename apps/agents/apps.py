from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "apps.agents"
    label = "agents"
    verbose_name = "Agents"

    def ready(self) -> None:
        from apps.core.events import register_channels, register_event_types
        from apps.core.registry import (
            NavItem,
            register_navigation,
            register_operator_models,
            register_request_hook,
        )

        from .events import CHANNELS, EVENT_TYPES
        from .execution import attribute_call

        register_request_hook("agents.attribution", attribute_call)
        register_channels(*CHANNELS)
        register_event_types(*EVENT_TYPES)
        register_operator_models(self.label, "agent")
        register_navigation(
            NavItem("Agents", "admin:agents_agent_changelist", "Builds", icon="smart_toy",
                    permission="agents.view_agent", order=20),
            NavItem("Agent tasks", "admin:agents_agenttask_changelist", "Builds", icon="task",
                    permission="agents.view_agenttask", order=30),
        )  # fmt: skip
