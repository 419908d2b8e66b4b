from celery import shared_task

from .recorder import call_records_store
from .services import providers_probe_all


@shared_task(name="providers.probe_all", ignore_result=True)
def probe_providers() -> dict[str, str]:
    """Probe every enabled provider (run by Celery beat every minute)."""
    return providers_probe_all()


@shared_task(name="providers.store_call_records", ignore_result=True)
def store_call_records() -> int:
    """Write the LLM call records waiting in Redis (asked for by recorders, and run by beat)."""
    return call_records_store()
