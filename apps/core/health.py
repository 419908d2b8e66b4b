"""Health checks: each app registers its own; ``/health`` runs them all.

A check is a function returning a ``CheckResult`` (or raising, which counts as an error). A
critical check that fails turns ``/health`` into a 503; any other failure makes it "degraded".
An app adds one from its ``AppConfig.ready()`` by importing a module of decorated functions::

    @health_check("search_index")
    def search_index() -> CheckResult: ...

The name is the check's key (``/health``'s JSON, alert causes, the stored states); people read
its ``title`` (Home, alert titles), "Search index" by default, given where the name's words
would read wrong (``title="CPU"``).

``run_checks`` runs them all (``/health``, ``/health/detailed``, the monitoring API); beat's
periodic health run (``apps.monitoring``) stores their state changes and then sends
``health_ran`` with the outcomes, which the alerts app turns into alerts. ``error`` is what the
operator's vocabulary calls unhealthy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.dispatch import Signal

from .registry import Registry

OK, DEGRADED, ERROR, DISABLED, STARTING = "ok", "degraded", "error", "disabled", "starting"


@dataclass(frozen=True)
class CheckResult:
    """``degraded`` and a non-critical ``error`` make ``/health`` degraded; ``capabilities``
    says how a part works right now (``{"routing_state": "local"}``), shown at the top."""

    status: str  # ok | degraded | error | disabled | starting
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    capabilities: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HealthCheck:
    name: str
    run: Callable[[], CheckResult]
    critical: bool
    cache_seconds: float
    needs_database: bool = False  # not run while a critical check fails: it would only wait
    title: str = ""  # what people read; made from the name when not given

    def __post_init__(self) -> None:
        if not self.title:
            object.__setattr__(self, "title", default_title(self.name))


@dataclass(frozen=True)
class CheckOutcome:
    """One check's result in one run, with how long it took."""

    check: HealthCheck
    result: CheckResult
    latency_ms: float

    @property
    def name(self) -> str:
        return self.check.name

    @property
    def failing(self) -> bool:
        return self.result.status in (ERROR, DEGRADED)


health_checks: Registry[HealthCheck] = Registry("health check")
# Sent by the periodic health run with ``outcomes`` (a list of ``CheckOutcome``), after their
# state changes are stored; receivers must not raise (it is sent robustly, failures logged).
health_ran = Signal()
_cached: dict[str, tuple[float, CheckResult]] = {}


def default_title(name: str) -> str:
    """``channel_layer`` → "Channel layer"."""
    return name.replace("_", " ").capitalize()


def check_title(name: str) -> str:
    """The title of the check registered as ``name``; for a name no check has (a state stored
    before it was removed), the default one."""
    check = health_checks.get(name)
    return check.title if check is not None else default_title(name)


def health_check(
    name: str,
    *,
    title: str = "",
    critical: bool = False,
    cache_seconds: float = 0.0,
    needs_database: bool = False,
) -> Callable[[Callable[[], CheckResult]], Callable[[], CheckResult]]:
    """``title``: what people read, when the default from the name reads wrong ("CPU", not
    "Cpu"). ``needs_database``: the check queries the database, so ``/health`` skips it while
    the database (a critical check) does not answer, and answers within its own timeout."""

    def register(run: Callable[[], CheckResult]) -> Callable[[], CheckResult]:
        check = HealthCheck(name, run, critical, cache_seconds, needs_database, title)
        health_checks.register(name, check)
        return run

    return register


def registered_checks() -> list[HealthCheck]:
    return health_checks.values()


def run_check(check: HealthCheck) -> tuple[CheckResult, float]:
    """The result and how long it took in ms; slow checks may reuse a recent result."""
    now = time.monotonic()
    cached = _cached.get(check.name)
    if cached and now - cached[0] < check.cache_seconds:
        return cached[1], 0.0
    try:
        result = check.run()
    except Exception as exc:  # a broken dependency must show up as a failed check
        result = CheckResult(ERROR, f"{type(exc).__name__}: {exc}")
    _cached[check.name] = (now, result)
    return result, (time.monotonic() - now) * 1000


def forget_results() -> None:
    """Drop remembered results, so the next run of each check is fresh."""
    _cached.clear()


def run_checks(*, fresh: bool = False) -> list[CheckOutcome]:
    """Every registered check, the database's first: a check that needs the database is not run
    while a critical check fails (it would only wait). ``fresh`` ignores remembered results."""
    if fresh:
        forget_results()
    outcomes = []
    healthy = True
    for check in sorted(registered_checks(), key=lambda check: check.needs_database):
        if check.needs_database and not healthy:
            result, latency_ms = CheckResult(ERROR, "not run: the database does not answer"), 0.0
        else:
            result, latency_ms = run_check(check)
        outcomes.append(CheckOutcome(check, result, latency_ms))
        if check.critical and result.status == ERROR:
            healthy = False
    return outcomes
