from django.apps import AppConfig

# Nothing: /health and the feature status are read over HTTP
# (tests/core/test_structure.py holds every app to its face).
PUBLIC = frozenset[str]()


class MonitoringConfig(AppConfig):
    name = "apps.monitoring"
    label = "monitoring"
    verbose_name = "Monitoring"

    def ready(self) -> None:
        from celery.signals import beat_init, worker_init, worker_process_init

        from apps.core.process_report import start_process_reporter

        from . import checks  # noqa: F401  (registers the built-in health checks)
        from .metrics import task_metrics_connect

        task_metrics_connect()

        # Celery's processes report their pools and process gauges like the web's (which starts
        # its reporter from the ASGI application); prefork children each report themselves.
        for signal, role in (
            (worker_init, "worker"),
            (worker_process_init, "worker"),
            (beat_init, "beat"),
        ):
            signal.connect(
                lambda role=role, **kwargs: start_process_reporter(role),
                weak=False,
                dispatch_uid=f"monitoring.reporter.{signal.name}",
            )
