"""Health check for ``/health``: the providers' last probe results."""

from apps.monitoring.registry import CheckResult, health_check

from .models import HealthStatus, Provider


@health_check("providers")
def providers() -> CheckResult:
    enabled = list(Provider.objects.filter(enabled=True).values_list("name", "health_status"))
    if not enabled:
        return CheckResult("disabled", "no provider configured")
    failing = [name for name, status in enabled if status == HealthStatus.ERROR]
    if len(failing) == len(enabled):
        return CheckResult("error", f"every provider failed its last probe: {', '.join(failing)}")
    return CheckResult("ok", f"{len(enabled) - len(failing)}/{len(enabled)} providers healthy")
