from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    name = "apps.experiments"
    label = "experiments"
    verbose_name = "Experiments"

    def ready(self) -> None:
        from apps.core.events import register_channels, register_event_types
        from apps.core.registry import (
            Feature,
            register_feature,
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
        register_operator_models(self.label, "experiment", "canaryrollout", "experimentsettings")
