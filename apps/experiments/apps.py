from django.apps import AppConfig

# What other apps may import of this app (tests/core/test_structure.py holds every app to its
# face).
PUBLIC = frozenset({"models", "selectors", "services"})


class ExperimentsConfig(AppConfig):
    name = "apps.experiments"
    label = "experiments"
    verbose_name = "Experiments"

    def ready(self) -> None:
        from apps.core.events import register_channels, register_event_types
        from apps.core.registry import (
            Feature,
            NavItem,
            Page,
            register_feature,
            register_navigation,
            register_operator_models,
            register_pages,
            register_request_hook,
        )

        from .events import CHANNELS, EVENT_TYPES
        from .hooks import experiment_request_hook
        from .selectors import experiments_enabled

        register_request_hook("experiments.variant", experiment_request_hook)
        register_channels(*CHANNELS)
        register_event_types(*EVENT_TYPES)
        register_feature(
            Feature(
                "ab_testing",
                "A/B tests and canary rollouts of model configurations.",
                experiments_enabled,
            )
        )
        register_operator_models(self.label, "experiment", "canaryrollout", "experimentsettings")
        register_pages(
            Page(
                "experiment-board",
                "Experiments",
                "apps.experiments.pages.experiment_board",
                "Experiments",
                icon="science",
                permission="experiments.view_experiment",
                order=400,
                urls=("<int:pk>/", "<int:pk>/<slug:part>/"),
            ),
        )
        register_navigation(
            NavItem("Canary rollouts", "admin:experiments_canaryrollout_changelist",
                    "Experiments", icon="trending_up",
                    permission="experiments.view_canaryrollout", order=410),
            NavItem("Experiment settings", "admin:experiments_experimentsettings_changelist",
                    "Experiments", icon="tune",
                    permission="experiments.view_experimentsettings", order=420),
        )  # fmt: skip
