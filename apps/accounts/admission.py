"""The one admission sequence of an LLM call, the same for every entry point that makes one:
``/v1`` (plain and streamed), the REST query API, the SSE API and the WebSocket's ``query`` and
``stream``. Entry points ask here; only this module asks the limiter (``limits.py``).

1. ``admit_client``: the per-IP limit, before the caller is looked up, so a flood of made-up
   keys is refused before each costs a lookup (``/v1``; the REST and SSE APIs through
   ``middleware.py``).
2. The entry point authenticates the caller and checks its role.
3. ``admit_call``: the caller's key limits (RPM, and TPM as spent so far). A refusal leaves
   no call record.
4. ``admit_budget``: the budgets the call falls under (its key's, user's, workspace's and end
   user's, ``budgets.py``), asked by the LLM core itself for every call once the request is
   built (only then is the end user known), before any provider is tried: a spent budget is
   the core's ``insufficient_quota`` error (429), with no call record and no upstream request.
   Calls the platform makes for builds and agents are held to their user's budgets too.
5. After the answer, ``settle``: its tokens against the key's TPM limit. ``counts_tokens`` says
   whether ``settle`` wants them at all, so an entry point counts them only then. The call's
   cost is charged to its budgets by the core where the cost is known (``charge``).

``admit`` runs 1 and 3 at once for an entry point whose caller authenticated earlier (an open
WebSocket). Each step is memory only (``limits.py`` shares the counts with Redis in the
background): no database query, no Redis round trip; ``admit_budget`` awaits only when its
process's budgets are older than ``API_KEY_CACHE_SECONDS`` (one query for all).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from . import budgets
from .budgets import Spender
from .limits import ADMITTED, Admission, Refusal, limiter
from .models import ApiKey

__all__ = [
    "ADMITTED",
    "Admission",
    "KeyLimits",
    "Metered",
    "Refusal",
    "Spender",
    "admit",
    "admit_budget",
    "admit_call",
    "admit_client",
    "charge",
    "counts_tokens",
    "settle",
]


class Metered(Protocol):
    """What admission reads of a caller: its API key and the key's limits (a ``Principal``,
    or ``KeyLimits`` where only the key model is at hand). A session has no key: no limits."""

    @property
    def api_key_id(self) -> int | None: ...

    @property
    def rpm_limit(self) -> int | None: ...

    @property
    def tpm_limit(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """``Metered`` of an ``ApiKey`` (DRF's ``request.auth``), or of no key at all."""

    api_key_id: int | None = None
    rpm_limit: int | None = None
    tpm_limit: int | None = None

    @classmethod
    def of(cls, api_key: ApiKey | None) -> KeyLimits:
        if api_key is None:
            return cls()
        return cls(api_key.pk, api_key.rpm_limit, api_key.tpm_limit)


def admit_client(client: str, *, entry: str) -> Refusal | None:
    """Step 1: count the request from ``client`` (``limits.client_address``) against the
    per-IP limit, or refuse it. ``entry`` names the entry point in the refusal's log line."""
    return limiter.check_ip(client, entry=entry)


def admit_call(caller: Metered, *, entry: str, client: str = "") -> Admission:
    """Step 3: count an LLM call of an authenticated caller against its key's limits, or
    refuse it. ``ADMITTED`` (this very object) when the key has no limits; otherwise the
    answer carries the key's quotas, which ``/v1`` sends as ``x-ratelimit-*``."""
    admission = limiter.admit_key(
        api_key_id=caller.api_key_id,
        rpm_limit=caller.rpm_limit,
        tpm_limit=caller.tpm_limit,
        entry=entry,
        client=client,
    )
    return admission


async def admit_budget(caller: Spender, *, end_user: str = "", entry: str = "") -> Refusal | None:
    """Step 4: refuse a call whose budget is spent (``Refusal.code`` ``insufficient_quota``,
    ``retry_after`` until the budget's window resets), or None."""
    index = await budgets.index_current()
    if not index:
        return None
    return budgets.refusal(index, caller, end_user=end_user, entry=entry)


def admit(client: str, caller: Metered | None, *, entry: str) -> Admission:
    """Steps 1 and 3 at once, for a caller that authenticated earlier (an open WebSocket): the
    per-IP limit, then, when there is a caller, its key's limits."""
    refusal = admit_client(client, entry=entry)
    if refusal is not None:
        return Admission(refusal)
    if caller is None:
        return ADMITTED
    return admit_call(caller, entry=entry, client=client)


def counts_tokens(caller: Metered) -> bool:
    """Whether ``settle`` wants the tokens of this caller's calls: only a key with a TPM limit
    reads them, so an entry point need not count them otherwise."""
    return caller.tpm_limit is not None and caller.api_key_id is not None


def settle(caller: Metered, *, tokens: int) -> None:
    """Step 5: count a finished call's tokens against its key's TPM limit."""
    limiter.note_tokens(api_key_id=caller.api_key_id, tpm_limit=caller.tpm_limit, tokens=tokens)


def charge(caller: Spender, *, end_user: str = "", cost: Decimal) -> None:
    """Step 5, for money: count a finished call's cost against the budgets it falls under
    (memory only; the LLM core's bookkeeping calls it with every call's cost)."""
    budgets.charge(caller, end_user=end_user, cost=cost)
