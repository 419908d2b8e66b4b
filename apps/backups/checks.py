from apps.core.health import DISABLED, CheckResult, health_check

from .selectors import backup_state


@health_check("backups", cache_seconds=5.0, needs_database=True)
def backups() -> CheckResult:
    """The last backup's state, on Home and ``/health``: a failed or stale backup makes the
    platform degraded (never down: it still serves)."""
    state = backup_state()
    if state.status == "none":
        return CheckResult(DISABLED, state.message)
    return CheckResult(state.status, state.message)
