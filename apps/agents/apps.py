from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "apps.agents"
    label = "agents"
    verbose_name = "Agents"

    def ready(self) -> None:
        from apps.core.registry import register_request_hook

        from .execution import attribute_call

        register_request_hook("agents.attribution", attribute_call)
