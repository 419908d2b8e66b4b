"""Budgets on the request path: which budgets a call falls under, whether one is spent, and
what a finished call cost them. No database query and no Redis round trip per call.

The budgets themselves are cached per process (``index_current``), as the callers' keys are:
loaded at most once every ``API_KEY_CACHE_SECONDS`` (one query, shared by concurrent callers),
dropped at once in the process that saves or deletes one, so other processes see a change
within that period.

Spend is counted like the rate limits, by ``limits.Limiter`` (memory, shared through Redis in
its background pipeline, ``INCRBY`` on a key per budget scope, target, period and window), in
hundred-millionths of a dollar (the call record's precision). A window is a calendar day or
month in UTC. ``charge`` adds a finished call's cost, in the process that ran the call (the
LLM core's bookkeeping, where the cost is known); ``refusal`` compares each budget's limit
with the process's view of the spend, so a budget holds across processes to within about a
second, and calls already running when it is reached may take it past the limit.

The counters are reconciled with the call records by a periodic task (the providers app's
``budgets_reconcile``: one aggregate query per budget over its window, then ``spend_set``).

Without Redis, budgets fail open, per process: each process goes on counting on top of the
spend it last read and refuses once its own view reaches the limit (``limits.py``), and what it
counted meanwhile is added once Redis answers. Refusing every call while Redis is away would
stop all LLM traffic for a counter's sake; the overshoot is bounded by what each process can
spend in the outage, and the reconciliation puts the counters right afterwards.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

import redis
from channels.db import database_sync_to_async
from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from apps.core.database import is_database_unavailable
from apps.core.redis import redis_client
from apps.core.registry import Firing
from apps.core.runtime import SingleFlight

from .limits import EXPIRY_MARGIN, Refusal, limiter
from .models import Budget, BudgetPeriod, BudgetScope

logger = logging.getLogger(__name__)

UNITS_PER_DOLLAR = 10**8  # the call record's cost has 8 decimal places
RETRY_LOAD_SECONDS = 1.0  # while the database does not answer, the old budgets hold this long
INSUFFICIENT_QUOTA = "insufficient_quota"
REDIS_ERRORS = (redis.RedisError, OSError)


class Spender(Protocol):
    """What a budget reads of a caller (a ``Principal``, the LLM core's ``Caller``)."""

    @property
    def api_key_id(self) -> int | None: ...

    @property
    def user_id(self) -> int | None: ...

    @property
    def workspace_id(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class Window:
    """A budget's current period: from ``starts`` (included) to ``ends`` (excluded), UTC."""

    starts: datetime
    ends: datetime
    label: str  # 20261206 or 202612: part of the counter's key

    @property
    def ends_at(self) -> float:
        return self.ends.timestamp()


def window(period: str, now: datetime | None = None) -> Window:
    """The day or month (UTC) that ``now`` falls in."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    if period == BudgetPeriod.DAY:
        starts = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return Window(starts, starts + timedelta(days=1), starts.strftime("%Y%m%d"))
    starts = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    ends = (
        starts.replace(year=starts.year + 1, month=1)
        if starts.month == 12
        else (starts.replace(month=starts.month + 1))
    )
    return Window(starts, ends, starts.strftime("%Y%m"))


@dataclass(frozen=True, slots=True)
class Rule:
    """A budget as the request path reads it."""

    id: int
    scope: str
    target: str
    period: str
    limit: Decimal
    soft_limit_percent: int
    name: str  # "the daily budget of API key 'ci' (budget 3)"

    @property
    def limit_units(self) -> int:
        return int(self.limit * UNITS_PER_DOLLAR)

    def key(self, current: Window) -> str:
        """The Redis key of this budget's spend in ``current`` (the target last: an end user's
        string may hold anything)."""
        return limiter.key("spend", self.scope, self.period, current.label, self.target)


def rule_of(budget: Budget) -> Rule:
    period = "daily" if budget.period == BudgetPeriod.DAY else "monthly"
    scope = BudgetScope(budget.scope)
    if scope == BudgetScope.API_KEY and budget.api_key is not None:
        target = f"API key {budget.api_key.name!r} (ao_{budget.api_key.prefix}_…)"
    elif scope == BudgetScope.USER and budget.user is not None:
        target = f"user {budget.user.get_username()!r}"
    elif scope == BudgetScope.WORKSPACE and budget.workspace is not None:
        target = f"workspace {budget.workspace.name!r}"
    else:
        target = budget.target_text
    return Rule(
        id=budget.pk,
        scope=budget.scope,
        target=budget.target_id,
        period=budget.period,
        limit=budget.limit,
        soft_limit_percent=budget.soft_limit_percent,
        name=f"the {period} budget of {target} (budget {budget.pk})",
    )


# --- the process's budgets ---------------------------------------------------------------------

Index = dict[tuple[str, str], tuple[Rule, ...]]  # (scope, target) -> its budgets

_index: Index = {}
_loaded_at = -math.inf
_changes = 0  # bumped by every save: a load that raced one must not be kept
_loads = SingleFlight()


def budgets_load() -> Index:
    """Every budget, by what it is counted under (one query)."""
    index: dict[tuple[str, str], list[Rule]] = {}
    for budget in Budget.objects.select_related("api_key", "user", "workspace"):
        rule = rule_of(budget)
        index.setdefault((rule.scope, rule.target), []).append(rule)
    return {target: tuple(rules) for target, rules in index.items()}


async def index_current() -> Index:
    """The budgets as this process knows them, loaded again when older than
    ``API_KEY_CACHE_SECONDS``."""
    if time.monotonic() - _loaded_at < settings.API_KEY_CACHE_SECONDS:
        return _index
    return await _loads.run("budgets", _load)


async def _load() -> Index:
    global _index, _loaded_at
    started = _changes
    try:
        index = await database_sync_to_async(budgets_load)()
    except Exception as error:  # fail open, as without Redis: no call fails for a budget's sake
        if is_database_unavailable(error):
            logger.warning("budgets: the database does not answer; the budgets known hold")
        else:
            logger.exception("budgets: could not load them; the budgets known hold")
        _loaded_at = time.monotonic() - settings.API_KEY_CACHE_SECONDS + RETRY_LOAD_SECONDS
        return _index
    if started == _changes:
        _index, _loaded_at = index, time.monotonic()
    return index


def index_forget() -> None:
    global _changes, _loaded_at
    _changes += 1
    _loaded_at = -math.inf


@receiver(post_save, sender=Budget, dispatch_uid="accounts.budgets.saved")
@receiver(post_delete, sender=Budget, dispatch_uid="accounts.budgets.deleted")
def _budget_changed(**kwargs: Any) -> None:
    index_forget()


def rules_for(index: Index, caller: Spender, end_user: str = "") -> list[Rule]:
    """The budgets a call of ``caller`` for ``end_user`` falls under: its key's, its user's,
    its workspace's (all from the authenticated caller) and its end user's."""
    found: list[Rule] = []
    for scope, target in (
        (BudgetScope.API_KEY, caller.api_key_id),
        (BudgetScope.USER, caller.user_id),
        (BudgetScope.WORKSPACE, caller.workspace_id),
        (BudgetScope.END_USER, end_user or None),
    ):
        if target is not None:
            found += index.get((scope.value, str(target)), ())
    return found


# --- the request path --------------------------------------------------------------------------


def refusal(
    index: Index, caller: Spender, *, end_user: str = "", entry: str = "", now: float | None = None
) -> Refusal | None:
    """The refusal of a call whose budget is spent, or None. Memory only."""
    if not index:
        return None
    rules = rules_for(index, caller, end_user)
    if not rules:
        return None
    now = time.time() if now is None else now
    moment = datetime.fromtimestamp(now, UTC)
    for rule in rules:
        current = window(rule.period, moment)
        key = rule.key(current)
        spent = limiter.spent(key, current.ends_at)
        if spent < rule.limit_units:
            continue
        wait = current.ends_at - now
        resets = current.ends.strftime("%Y-%m-%d %H:%M UTC")
        dollars = Decimal(spent) / UNITS_PER_DOLLAR
        log = limiter.refusal_logged(key, now)
        if log is not None:
            logger.warning(
                "budget: refused a call on %s: %s is spent ($%s of $%s)%s",
                entry or "the LLM core",
                rule.name,
                f"{dollars:.4f}",
                rule.limit,
                log,
            )
        return Refusal(
            f"Budget exceeded: {rule.name} is spent (${dollars:.4f} of ${rule.limit}); "
            f"new calls are refused until it resets at {resets} (in {max(1, math.ceil(wait))} s).",
            wait,
            "budget",
            INSUFFICIENT_QUOTA,
        )
    return None


def charge(caller: Spender, *, end_user: str = "", cost: Decimal, now: float | None = None) -> None:
    """Count a finished call's cost against the budgets it falls under. Memory only."""
    if not _index or not cost or cost <= 0:
        return
    rules = rules_for(_index, caller, end_user)
    if not rules:
        return
    units = int(cost * UNITS_PER_DOLLAR)
    moment = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    for rule in rules:
        current = window(rule.period, moment)
        limiter.add(rule.key(current), current.ends_at, units)


# --- reading and correcting the shared spend (pages, the API, alerts, reconciliation) ----------


def spend_read(budgets: Iterable[Budget], now: datetime | None = None) -> dict[int, Decimal | None]:
    """Each budget's spend in its current window as Redis has it (one ``MGET``); None for all
    when Redis does not answer."""
    budgets = list(budgets)
    if not budgets:
        return {}
    keys = [rule_of_light(budget).key(window(budget.period, now)) for budget in budgets]
    try:
        values = redis_client().mget(keys)
    except REDIS_ERRORS as error:
        logger.warning("budgets: Redis does not answer (%s); spend unknown", error)
        return {budget.pk: None for budget in budgets}
    return {
        budget.pk: Decimal(int(value or 0)) / UNITS_PER_DOLLAR
        for budget, value in zip(budgets, values, strict=True)
    }


def spend_set(budget: Budget, spent: Decimal, now: datetime | None = None) -> Decimal | None:
    """Make the shared spend of ``budget``'s current window ``spent`` (reconciliation); the
    value it replaced. Each process reads it within ``limits.REFRESH_INTERVAL``."""
    current = window(budget.period, now)
    key = rule_of_light(budget).key(current)
    client = redis_client()
    pipe = client.pipeline(transaction=False)
    pipe.getset(key, int(spent * UNITS_PER_DOLLAR))
    pipe.expireat(key, int(current.ends_at) + EXPIRY_MARGIN)
    before, _ = pipe.execute()
    return None if before is None else Decimal(int(before)) / UNITS_PER_DOLLAR


def rule_of_light(budget: Budget) -> Rule:
    """A rule without the names (no related rows read): enough for its key."""
    return Rule(budget.pk, budget.scope, budget.target_id, budget.period, budget.limit, 0, "")


# --- the soft limit's alert ----------------------------------------------------------------------


def soft_limit_firings(now: datetime | None = None) -> list[Firing]:
    """The ``budget_soft_limit`` rule, after each periodic health run: a firing per budget
    whose spend in its current window has reached its soft limit. The key names the window, so
    a budget alerts once per window: the alert stays open while the window lasts and is
    resolved when the next one starts below the threshold. Raises when Redis does not answer
    (a rule that raises fires and resolves nothing that run)."""
    budgets = list(Budget.objects.select_related("api_key", "user", "workspace"))
    if not budgets:
        return []
    current = {budget.pk: window(budget.period, now) for budget in budgets}
    keys = [rule_of_light(budget).key(current[budget.pk]) for budget in budgets]
    values = redis_client().mget(keys)
    firings = []
    for budget, value in zip(budgets, values, strict=True):
        spent = Decimal(int(value or 0)) / UNITS_PER_DOLLAR
        share = spent / budget.limit
        if share * 100 < budget.soft_limit_percent:
            continue
        rule, ends = rule_of(budget), current[budget.pk].ends
        over = share >= 1
        firings.append(
            Firing(
                f"{budget.pk}:{current[budget.pk].label}",
                f"{rule.name[0].upper()}{rule.name[1:]} is {'spent' if over else 'nearly spent'}",
                f"${spent:.4f} of ${budget.limit} spent ({share:.0%}; the alert is at "
                f"{budget.soft_limit_percent}%); "
                + ("new calls are refused " if over else "")
                + f"until it resets at {ends:%Y-%m-%d %H:%M} UTC.",
                "critical" if over else "warning",
                {
                    "budget": budget.pk,
                    "scope": budget.scope,
                    "period": budget.period,
                    "spent": str(spent),
                    "limit": str(budget.limit),
                    "resets_at": ends.isoformat(),
                },
            )
        )
    return firings
