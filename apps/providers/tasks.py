from celery import shared_task

from .services import providers_probe_all


@shared_task(name="providers.probe_all", ignore_result=True)
def probe_providers() -> dict[str, str]:
    """Probe every enabled provider (run by Celery beat every minute)."""
    return providers_probe_all()
