from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    name = "apps.experiments"
    label = "experiments"
    verbose_name = "Experiments"

    def ready(self) -> None:
        from apps.core.events import register_channels, register_event_types
        from apps.core.registry import (
            Feature,
            NavItem,
            register_feature,
            register_navigation,
            register_operator_models,
            register_request_hook,
        )

        from .events import CHANNELS, EVENT_TYPES
        from .hooks import experiment_request_hook
        from .selectors import experiments_enabled

        register_request_hook("experiments.variant", experiment_request_hook)
        register_channels(*CHANNELS)
        register_event_types(*EVENT_TYPES)
        register_feature(
            Feature("ab_testing", "A/B tests and canary rollouts of model configurations.",
                    experiments_enabled)
        )  # fmt: skip
        register_operator_models(
            self.label, "experiment", "variant", "canaryrollout", "experimentsettings"
        )
        register_navigation(
            NavItem("Experiments", "admin:experiments_experiment_changelist", "LLM core",
                    icon="science", permission="experiments.view_experiment", order=60),
            NavItem("Canary rollouts", "admin:experiments_canaryrollout_changelist", "LLM core",
                    icon="trending_up", permission="experiments.view_canaryrollout", order=61),
            NavItem("Experiment settings", "admin:experiments_experimentsettings_changelist",
                    "LLM core", icon="tune", permission="experiments.view_experimentsettings",
                    order=62),
        )  # fmt: skip
