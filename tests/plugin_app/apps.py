"""A throw-away app, installed only by the test settings, that plugs into the platform through
its ``AppConfig`` alone, filling every registry: an event channel and type, a health check, a
model operators may edit, a navigation entry, a dashboard page, a request hook, a ``/ws/``
message type, a feature, an alert rule (a threshold kind, as a budget's soft limit would be),
a call record hook, call counts (that count nothing) and a figure on the API key's page.
``tests/core/test_registries.py`` checks each takes effect."""

from django.apps import AppConfig


class PluginAppConfig(AppConfig):
    name = "tests.plugin_app"
    label = "plugin_app"
    verbose_name = "Plug-in test app"

    def ready(self) -> None:
        from apps.core.events import Channel, EventType, register_channels, register_event_types
        from apps.core.registry import (
            AlertRule,
            Feature,
            NavItem,
            ObjectFigure,
            Page,
            SocketAction,
            register_alert_rule,
            register_call_counts,
            register_call_record_hook,
            register_feature,
            register_navigation,
            register_object_figure,
            register_operator_models,
            register_pages,
            register_request_hook,
            register_socket_action,
        )

        from . import checks  # noqa: F401  (registers the health check)
        from .hooks import count_no_calls, note_recorded, refuse_widget_model

        register_channels(Channel("widget", "Changes of one widget.", per_object=True))
        register_event_types(
            EventType("widget.updated", "widget", {"id": int, "status": str}, "A widget changed.")
        )
        register_operator_models(self.label, "widget")
        register_feature(Feature("widgets", "Widgets, while any exist.", widgets_exist))
        register_socket_action(
            SocketAction("widget", widget_socket_action, "widget_made", "plugin_app.add_widget")
        )
        register_navigation(
            NavItem(
                "Widgets",
                "admin:plugin_app_widget_changelist",
                "Plug-ins",
                permission="plugin_app.view_widget",
            ),
        )
        # Out of the sidebar, which the dashboard's tests compare entry by entry.
        register_pages(
            Page(
                "widgets",
                "Widgets",
                "tests.plugin_app.pages.board",
                "Plug-ins",
                permission="plugin_app.view_widget",
                in_sidebar=False,
            ),
        )
        register_request_hook("plugin_app.refuse", refuse_widget_model)
        register_call_record_hook("plugin_app.recorded", note_recorded)
        register_call_counts("plugin_app.none", count_no_calls)
        register_object_figure(
            "plugin_app.widgets", ObjectFigure("accounts.apikey", "Widgets", widget_count)
        )
        register_alert_rule(
            AlertRule("widget_overflow", "More widgets than the plug-in allows.", widget_overflow)
        )


def widget_socket_action(message, user):
    """``{"type": "widget", "name": ...}`` makes a widget; the client follows ``widget:<id>``."""
    from django.core.exceptions import ValidationError

    from apps.core.registry import SocketReply

    from .models import Widget

    name = message.get("name")
    if not isinstance(name, str) or not name:
        raise ValidationError({"name": "Required."})
    widget = Widget.objects.create(name=name)
    return SocketReply({"widget": widget.pk}, subscribe=f"widget:{widget.pk}")


def widget_count(api_key) -> str:
    from .models import Widget

    return f"{Widget.objects.count()} in all"


def widgets_exist() -> bool:
    from .models import Widget

    return Widget.objects.exists()


WIDGETS_ALLOWED = 2


def widget_overflow() -> list:
    """One firing while there are more than ``WIDGETS_ALLOWED`` widgets."""
    from apps.core.registry import Firing

    from .models import Widget

    count = Widget.objects.count()
    if count <= WIDGETS_ALLOWED:
        return []
    return [Firing("all", f"{count} widgets", f"more than {WIDGETS_ALLOWED}", "critical")]
