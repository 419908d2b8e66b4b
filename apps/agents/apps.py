from django.apps import AppConfig

# What other apps may import of this app (tests/core/test_structure.py holds every app to its
# face).
PUBLIC = frozenset({"execution", "models", "selectors", "services"})


class AgentsConfig(AppConfig):
    name = "apps.agents"
    label = "agents"
    verbose_name = "Agents"

    def ready(self) -> None:
        from apps.core.events import register_channels, register_event_types
        from apps.core.registry import (
            NavItem,
            Page,
            SocketAction,
            register_navigation,
            register_operator_models,
            register_pages,
            register_request_hook,
            register_socket_action,
        )

        from .events import CHANNELS, EVENT_TYPES
        from .execution import attribute_call
        from .services import agent_socket_action

        register_request_hook("agents.attribution", attribute_call)
        register_channels(*CHANNELS)
        register_event_types(*EVENT_TYPES)
        register_operator_models(self.label, "agent")
        register_socket_action(SocketAction("agent", agent_socket_action, "agent_task_started"))
        register_navigation(
            NavItem("Agents", "admin:agents_agent_changelist", "Builds", icon="smart_toy",
                    permission="agents.view_agent", order=20),
            NavItem("Agent tasks", "admin:agents_agenttask_changelist", "Builds", icon="task",
                    permission="agents.view_agenttask", order=30),
        )  # fmt: skip
        # /admin/agents/ is the admin's index of this app: the board takes another slug.
        register_pages(
            Page(
                "agent-board",
                "Agent board",
                "apps.agents.pages.agent_board",
                "Builds",
                icon="groups",
                permission="agents.view_agent",
                order=19,
                urls=("<int:pk>/", "tasks/<int:task>/"),
            ),
        )
