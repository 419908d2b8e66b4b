from django.apps import AppConfig


class ProvidersConfig(AppConfig):
    name = "apps.providers"
    label = "providers"
    verbose_name = "Providers and LLM calls"

    def ready(self) -> None:
        from celery.signals import worker_process_shutdown

        from . import checks, signals  # noqa: F401  (health check, config version receivers)
        from .recorder import recorder

        worker_process_shutdown.connect(
            lambda **kwargs: recorder.close(), weak=False, dispatch_uid="providers.recorder"
        )
