from django.apps import AppConfig

# What other apps may import of this app (tests/core/test_structure.py holds every app to its
# face).
PUBLIC = frozenset({"models", "plugins", "selectors", "services"})


class BuildsConfig(AppConfig):
    name = "apps.builds"
    label = "builds"
    verbose_name = "Builds"

    def ready(self) -> None:
        from apps.approvals.signals import approval_decided
        from apps.core.events import register_channels, register_event_types
        from apps.core.registry import (
            NavItem,
            Page,
            SocketAction,
            register_navigation,
            register_operator_models,
            register_pages,
            register_socket_action,
        )

        from .events import CHANNELS, EVENT_TYPES
        from .services import approval_decided_receiver, build_socket_action

        register_channels(*CHANNELS)
        register_event_types(*EVENT_TYPES)
        register_operator_models(self.label, "buildtemplate")
        register_navigation(
            NavItem("Builds", "admin:builds_build_changelist", "Builds", icon="construction",
                    permission="builds.view_build", order=10),
            NavItem("Build templates", "admin:builds_buildtemplate_changelist", "Builds",
                    icon="account_tree", permission="builds.view_buildtemplate", order=15),
        )  # fmt: skip
        register_socket_action(SocketAction("build", build_socket_action, "build_started"))
        register_pages(
            Page(
                "build",
                "Build",
                "apps.builds.pages.build",
                "Builds",
                icon="rocket_launch",
                permission="builds.view_build",
                order=8,
                urls=("<int:pk>/", "<int:pk>/<slug:part>/", "<int:pk>/steps/<int:step>/"),
            ),
        )
        approval_decided.connect(approval_decided_receiver, dispatch_uid="builds.approval")
