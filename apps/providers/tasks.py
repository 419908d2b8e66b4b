from datetime import timedelta

from celery import shared_task
from django.conf import settings

from .llm.recording.records import call_records_prune, call_records_store, call_records_sweep
from .services import budgets_reconcile, providers_probe_all


@shared_task(name="providers.probe_all", ignore_result=True)
def probe_providers() -> dict[str, str]:
    """Probe every enabled provider (run by Celery beat every minute)."""
    return providers_probe_all()


@shared_task(name="providers.store_call_records", ignore_result=True)
def store_call_records() -> int:
    """Store the LLM call records waiting in Redis (asked for by recorders, and run by beat)."""
    return call_records_store()


@shared_task(name="providers.sweep_call_records", ignore_result=True)
def sweep_call_records() -> int:
    """Fail the records of streams whose process died before they ended (run by beat)."""
    return call_records_sweep(older_than=timedelta(seconds=settings.CALL_RECORD_STALE_SECONDS))


@shared_task(name="providers.prune_call_records", ignore_result=True)
def prune_call_records() -> dict[str, int]:
    """Delete the call records older than ``CALL_RECORD_RETENTION_DAYS`` (run by beat)."""
    pruned = call_records_prune(older_than_days=settings.CALL_RECORD_RETENTION_DAYS)
    return {"calls": pruned.calls, "attempts": pruned.attempts, "dead_letters": pruned.dead_letters}


@shared_task(name="providers.reconcile_budgets", ignore_result=True)
def reconcile_budgets() -> int:
    """Put the budgets' shared spend right from the call records (run by beat)."""
    return budgets_reconcile()
