"""Health checks register here; ``/health`` runs them all.

A check is a function returning a ``CheckResult`` (or raising, which counts as an error). A
critical check that fails turns ``/health`` into a 503; any other failure makes it "degraded".
Adding a check is one decorated function::

    @health_check("search_index")
    def search_index() -> CheckResult: ...
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CheckResult:
    status: str  # "ok" | "error" | "disabled"
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HealthCheck:
    name: str
    run: Callable[[], CheckResult]
    critical: bool
    cache_seconds: float


_checks: dict[str, HealthCheck] = {}
_cached: dict[str, tuple[float, CheckResult]] = {}


def health_check(
    name: str, *, critical: bool = False, cache_seconds: float = 0.0
) -> Callable[[Callable[[], CheckResult]], Callable[[], CheckResult]]:
    def register(run: Callable[[], CheckResult]) -> Callable[[], CheckResult]:
        _checks[name] = HealthCheck(name, run, critical, cache_seconds)
        return run

    return register


def registered_checks() -> list[HealthCheck]:
    return list(_checks.values())


def run_check(check: HealthCheck) -> tuple[CheckResult, float]:
    """The result and how long it took in ms; slow checks may reuse a recent result."""
    now = time.monotonic()
    cached = _cached.get(check.name)
    if cached and now - cached[0] < check.cache_seconds:
        return cached[1], 0.0
    try:
        result = check.run()
    except Exception as exc:  # a broken dependency must show up as a failed check
        result = CheckResult("error", f"{type(exc).__name__}: {exc}")
    _cached[check.name] = (now, result)
    return result, (time.monotonic() - now) * 1000


def forget_results() -> None:
    """Drop remembered results, so the next run of each check is fresh."""
    _cached.clear()
