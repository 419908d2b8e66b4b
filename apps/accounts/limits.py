"""Inbound rate limits: per API key (LLM requests and tokens per minute, set on the key) and
per client IP (``RATE_LIMIT_ENABLED``, ``RATE_LIMIT_MAX`` requests per ``RATE_LIMIT_WINDOW_MS``).

Every entry point asks here before anything costly happens, through the one admission
sequence (``admission.py``): ``/v1`` (``apps/gateway``), the REST and SSE APIs (``middleware.py``
for the IP, ``throttles.py`` and the SSE views for keys) and the WebSocket's ``query``/``stream``
messages. A refused request never reaches the LLM core, so it leaves no call record; the refusal
is logged instead.

Windows are fixed: a key's minute is the clock's minute, an IP's window the clock divided into
``RATE_LIMIT_WINDOW_MS`` slices, so every process agrees on them. Counting costs the request no
I/O: each process counts in memory (``Limiter``), and a background thread adds what it counted
to Redis every ``FLUSH_INTERVAL`` seconds (``INCRBY``, whose answer is the shared count) and
reads the shared counts of the windows it knows at most once every ``REFRESH_INTERVAL``. A
process's view is the shared count as last read plus what it counted since, so limits hold
across processes to within about a second. Without Redis each process goes on counting on top
of what it last read (so per process), logs the outage once, tries again every second and adds
what it counted meanwhile once Redis answers.

Tokens are known only once a call has ended (``note_tokens``): a TPM limit refuses new requests
once the minute's tokens are spent, and calls running meanwhile may take it past the limit.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import redis
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from apps.core.redis import key as platform_key
from apps.core.redis import redis_client

logger = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.1  # this process's counts reach Redis within this
REFRESH_INTERVAL = 1.0  # shared counts are read at most this often per window and process
PROBE_INTERVAL = 1.0  # how often Redis is tried while it does not answer
LOG_INTERVAL = 1.0  # refusals of one counter are logged at most this often (with a tally)
KEY_WINDOW_SECONDS = 60  # RPM and TPM
EXPIRY_MARGIN = 60  # a window's key outlives its end by this (clock skew between hosts)
MAX_COUNTERS = 100_000  # beyond this, the smallest counts are dropped (their shared ones stay)
REDIS_ERRORS = (redis.RedisError, OSError)
RATE_LIMITED = "rate_limited"
UNKNOWN_CLIENT = "unknown"
FORWARDED_FOR = b"x-forwarded-for"


# --- settings, read once (an attribute of Django's settings costs ~0.4 µs a read) --------------


@dataclass(frozen=True)
class _Config:
    enabled: bool
    limit: int
    window_ms: int
    trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

    @property
    def window(self) -> float:
        return self.window_ms / 1000


_config: _Config | None = None
SETTINGS = ("RATE_LIMIT_ENABLED", "RATE_LIMIT_MAX", "RATE_LIMIT_WINDOW_MS", "TRUSTED_PROXIES")


def config() -> _Config:
    global _config
    if _config is None:
        _config = _Config(
            settings.RATE_LIMIT_ENABLED,
            settings.RATE_LIMIT_MAX,
            settings.RATE_LIMIT_WINDOW_MS,
            tuple(
                ipaddress.ip_network(entry.strip(), strict=False)
                for entry in settings.TRUSTED_PROXIES
                if entry.strip()
            ),
        )
    return _config


@receiver(setting_changed, dispatch_uid="accounts.limits.settings")
def _settings_changed(setting: str, **kwargs: Any) -> None:
    """``override_settings`` in tests."""
    global _config
    if setting in SETTINGS:
        _config = None


# --- what callers get back -------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """A request over a limit: what to tell the caller, and when to come back."""

    message: str
    retry_after: float  # seconds until the window that refused it ends
    scope: str  # "ip", "requests", "tokens" or "budget"
    code: str = RATE_LIMITED  # "insufficient_quota" for a spent budget

    @property
    def retry_after_seconds(self) -> int:
        """``Retry-After``: whole seconds, at least one."""
        return max(1, math.ceil(self.retry_after))


@dataclass(frozen=True)
class Quota:
    """One of a key's limits as it stands after this request."""

    limit: int
    remaining: int
    reset: float  # seconds until the window ends


@dataclass(frozen=True)
class Admission:
    """The answer for a key: refused or not, and its quotas (for ``x-ratelimit-*``)."""

    refusal: Refusal | None = None
    requests: Quota | None = None
    tokens: Quota | None = None

    def headers(self) -> list[tuple[str, str]]:
        """OpenAI's ``x-ratelimit-*`` headers for the limits the key has."""
        found: list[tuple[str, str]] = []
        for name, quota in (("requests", self.requests), ("tokens", self.tokens)):
            if quota is not None:
                found += [
                    (f"x-ratelimit-limit-{name}", str(quota.limit)),
                    (f"x-ratelimit-remaining-{name}", str(max(0, quota.remaining))),
                    (f"x-ratelimit-reset-{name}", duration(quota.reset)),
                ]
        return found


ADMITTED = Admission()


def duration(seconds: float) -> str:
    """A wait as OpenAI writes it in ``x-ratelimit-reset-*``: ``20ms``, ``1.5s``, ``6m0s``."""
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{int(seconds * 1000)}ms"
    minutes, rest = divmod(seconds, 60)
    text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{text}" if minutes else text


def usage_tokens(usage: Any) -> int:
    """The tokens of an OpenAI ``usage`` object (chat, completions, embeddings, responses)."""
    if not isinstance(usage, dict):
        return 0
    total = usage.get("total_tokens")
    if isinstance(total, int) and not isinstance(total, bool) and total >= 0:
        return total
    parts = (
        usage.get(name)
        for name in ("prompt_tokens", "completion_tokens", "input_tokens", "output_tokens")
    )
    return sum(v for v in parts if isinstance(v, int) and not isinstance(v, bool) and v > 0)


# --- the client's address ----------------------------------------------------------------------


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_proxies() -> tuple[Network, ...]:
    return (_config or config()).trusted


@lru_cache(maxsize=4096)
def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address as written in a header or a scope (``[v6]``, ``v4:port`` tolerated)."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


@lru_cache(maxsize=4096)
def _trusted(text: str, networks: tuple[Network, ...]) -> bool:
    address = _address(text)
    return address is not None and any(address in network for network in networks)


def client_address(peer: str | None, forwarded_for: str | None) -> str:
    """Who is calling: the connection's peer, unless the peer is a trusted proxy
    (``TRUSTED_PROXIES``): then the address that the last trusted proxy in the chain was
    called from, per ``X-Forwarded-For`` read from the right. What the client itself wrote
    into the header (to the left of what the proxies added) is never believed."""
    if not peer:
        return UNKNOWN_CLIENT
    networks = trusted_proxies()
    if not networks or not forwarded_for or not _trusted(peer, networks):
        return peer
    hop = peer
    for entry in reversed(forwarded_for.split(",")):
        if _address(entry) is None:
            break
        hop = entry.strip()
        if not _trusted(hop, networks):
            break
    return hop


def scope_client(scope: dict[str, Any]) -> str:
    """``client_address`` of an ASGI connection (``/v1``, the WebSocket); the headers are read
    only when the peer is a trusted proxy."""
    peer = scope.get("client")
    address = peer[0] if peer else None
    networks = trusted_proxies()
    if not address or not networks or not _trusted(address, networks):
        return address or UNKNOWN_CLIENT
    forwarded = [v.decode("latin-1") for k, v in scope.get("headers", ()) if k == FORWARDED_FOR]
    return client_address(address, ",".join(forwarded) or None)


@lru_cache(maxsize=4096)
def ip_bucket(text: str) -> str:
    """The counter an address counts under: itself, or its /64 for IPv6 (one client holds a
    whole /64, so counting single IPv6 addresses would be no limit at all)."""
    address = _address(text)
    if address is None:
        return UNKNOWN_CLIENT
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


# --- counting ----------------------------------------------------------------------------------


class _Counter:
    """One window of one limit in this process: what it counted (``total``), what of that has
    gone to Redis (``sent``), and the shared count as last read (``shared``, which included
    ``base`` of this process's own)."""

    __slots__ = (
        "base",
        "ends",
        "key",
        "logged_at",
        "read_at",
        "refused",
        "sent",
        "shared",
        "total",
    )

    def __init__(self, key: str, ends: float) -> None:
        self.key, self.ends = key, ends
        self.total = self.sent = self.shared = self.base = self.refused = 0
        self.read_at = self.logged_at = 0.0

    @property
    def count(self) -> int:
        return self.shared + self.total - self.base


class Limiter:
    """The process's counters; thread-safe (sync views run in threads, the rest in a loop)."""

    def __init__(self, client: Any = None, *, background: bool = True) -> None:
        self._client = client  # a redis.Redis; the shared client when None
        self._background = background  # False: ``sync`` is called by hand (tests)
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()  # one exchange with Redis at a time
        self._counters: dict[str, _Counter] = {}
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._prefix = ""
        self.down_since: float | None = None
        self._next_try = 0.0

    # --- the request path: memory only ---------------------------------------------------------
    def prefix(self) -> str:
        """What the Redis keys of the counters start with: ``<prefix>:limits:``."""
        if not self._prefix:
            self._prefix = platform_key("limits", "")
        return self._prefix

    def key(self, kind: str, *parts: object) -> str:
        """The Redis key of a counter: ``<prefix>:limits:<kind>:<parts…>``."""
        return f"{self.prefix()}{kind}:" + ":".join(map(str, parts))

    def _counter(self, key: str, ends: float) -> _Counter:
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = _Counter(key, ends)
            if self._background:
                if self._thread is None or not self._thread.is_alive():
                    self._start()
                self._wake.set()
        return counter

    def check_ip(self, address: str, *, entry: str) -> Refusal | None:
        """Count a request from ``address`` against the per-IP limit, or refuse it."""
        current = _config or config()
        if not current.enabled:
            return None
        limit, window = current.limit, current.window
        now = time.time()
        number = int(now // window)
        ends = (number + 1) * window
        key = f"{self._prefix or self.prefix()}ip:{current.window_ms}:{ip_bucket(address)}:{number}"
        with self._lock:
            counter = self._counter(key, ends)
            if counter.count < limit:
                counter.total += 1
                return None
            refusal = Refusal(
                f"Rate limit reached: at most {limit} requests per {_window_text(window)} from "
                f"one address; try again in {max(1, math.ceil(ends - now))} s.",
                ends - now,
                "ip",
            )
            log = self._note_refusal(counter, now)
        if log is not None:
            logger.warning(
                "rate limit: refused a request on %s from %s: over %d requests per %s%s",
                entry,
                address,
                limit,
                _window_text(window),
                log,
            )
        return refusal

    def admit_key(
        self,
        *,
        api_key_id: int | None,
        rpm_limit: int | None,
        tpm_limit: int | None,
        entry: str,
        client: str = "",
    ) -> Admission:
        """Count an LLM request of a key against its limits, or refuse it."""
        if api_key_id is None or (rpm_limit is None and tpm_limit is None):
            return ADMITTED
        now = time.time()
        minute = int(now // KEY_WINDOW_SECONDS)
        ends = (minute + 1) * KEY_WINDOW_SECONDS
        reset = ends - now
        wait = max(1, math.ceil(reset))
        refusal, log = None, None
        prefix = self._prefix or self.prefix()
        with self._lock:
            made = self._counter(f"{prefix}rpm:{api_key_id}:{minute}", ends) if rpm_limit else None
            spent = self._counter(f"{prefix}tpm:{api_key_id}:{minute}", ends) if tpm_limit else None
            if made is not None and rpm_limit is not None and made.count >= rpm_limit:
                refusal = Refusal(
                    f"Rate limit reached for requests: this API key allows {rpm_limit} requests "
                    f"per minute; try again in {wait} s.",
                    reset,
                    "requests",
                )
                log = self._note_refusal(made, now)
            elif spent is not None and tpm_limit is not None and spent.count >= tpm_limit:
                refusal = Refusal(
                    f"Rate limit reached for tokens: this API key allows {tpm_limit} tokens per "
                    f"minute and has used them; try again in {wait} s.",
                    reset,
                    "tokens",
                )
                log = self._note_refusal(spent, now)
            elif made is not None:
                made.total += 1
            requests = (
                Quota(rpm_limit, rpm_limit - made.count, reset) if made and rpm_limit else None
            )
            tokens = (
                Quota(tpm_limit, tpm_limit - spent.count, reset) if spent and tpm_limit else None
            )
        if refusal is not None and log is not None:
            limit = rpm_limit if refusal.scope == "requests" else tpm_limit
            logger.warning(
                "rate limit: refused a request on %s with API key %s%s: over %s %s per minute%s",
                entry,
                api_key_id,
                f" from {client}" if client else "",
                limit,
                refusal.scope,
                log,
            )
        return Admission(refusal, requests, tokens)

    def note_tokens(self, *, api_key_id: int | None, tpm_limit: int | None, tokens: int) -> None:
        """Count a finished call's tokens against its key's TPM limit (keys without one are
        not counted: nothing reads it)."""
        if api_key_id is None or tpm_limit is None or tokens <= 0:
            return
        now = time.time()
        minute = int(now // KEY_WINDOW_SECONDS)
        key = self.key("tpm", api_key_id, minute)
        with self._lock:
            self._counter(key, (minute + 1) * KEY_WINDOW_SECONDS).total += tokens

    def spent(self, key: str, ends: float) -> int:
        """This process's view of a counter of its own kind (a budget's spend,
        ``budgets.py``), counted from now on if it was not yet."""
        with self._lock:
            return self._counter(key, ends).count

    def add(self, key: str, ends: float, amount: int) -> None:
        """Add ``amount`` to a counter of its own kind (a budget's spend)."""
        if amount <= 0:
            return
        with self._lock:
            self._counter(key, ends).total += amount

    def refusal_logged(self, key: str, now: float) -> str | None:
        """``_note_refusal`` for a counter of another kind: the text to add to a log line, or
        None for no line."""
        with self._lock:
            counter = self._counters.get(key)
            return self._note_refusal(counter, now) if counter is not None else ""

    def _note_refusal(self, counter: _Counter, now: float) -> str | None:
        """Refusals are logged, one line per counter and ``LOG_INTERVAL`` at most (a flood
        must not flood the logs too): the text to add to the line, or None for no line."""
        counter.refused += 1
        if now - counter.logged_at < LOG_INTERVAL:
            return None
        more = counter.refused - 1
        counter.logged_at, counter.refused = now, 0
        return f" ({more} more refused since the last line)" if more else ""

    # --- the background thread: Redis ----------------------------------------------------------
    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rate-limits", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait(FLUSH_INTERVAL if self._counters else None)
            self._wake.clear()
            try:
                self.sync()
            except Exception:  # never let the thread die: limits would stop being shared
                logger.exception("rate limits: could not share the counts")

    def sync(self, now: float | None = None) -> None:
        """Add what this process counted to Redis and read the counts it has not read for a
        while (one pipeline); without Redis, keep counting here."""
        with self._sync_lock:
            self._sync(time.time() if now is None else now)

    def _sync(self, now: float) -> None:
        with self._lock:
            self._prune(now)
            if self.down_since is not None and now < self._next_try:
                return
            counters = self._counters.values()
            stale = [
                c for c in counters if c.total == c.sent and now - c.read_at >= REFRESH_INTERVAL
            ]
            sent = [(c, c.total - c.sent) for c in counters if c.total > c.sent]
            for counter, delta in sent:
                counter.sent += delta
        if not sent and not stale and self.down_since is None:
            return
        try:
            replies = self._exchange(sent, stale, now)
        except REDIS_ERRORS as error:
            with self._lock:
                for counter, delta in sent:  # sent again once Redis answers, if still current
                    counter.sent -= delta
            self._lost(error, now)
            return
        with self._lock:
            for counter, value in zip([c for c, _ in sent] + stale, replies, strict=True):
                counter.shared, counter.base, counter.read_at = int(value or 0), counter.sent, now
        if self.down_since is not None:
            logger.warning(
                "rate limits: Redis answers again after %.1f s; limits are shared again",
                now - self.down_since,
            )
            self.down_since = None

    def _exchange(
        self, sent: list[tuple[_Counter, int]], stale: list[_Counter], now: float
    ) -> list:
        client = self._client or redis_client()
        if not sent and not stale:  # Redis was down and nothing is counted: is it back?
            client.ping()
            return []
        pipe = client.pipeline(transaction=False)
        for counter, delta in sent:
            pipe.incrby(counter.key, delta)
            pipe.expireat(counter.key, int(counter.ends) + EXPIRY_MARGIN)
        if stale:
            pipe.mget([counter.key for counter in stale])
        replies = pipe.execute()
        values = replies[0 : 2 * len(sent) : 2]
        return [*values, *(replies[-1] if stale else [])]

    def _lost(self, error: BaseException, now: float) -> None:
        self._next_try = now + PROBE_INTERVAL
        if self.down_since is None:
            self.down_since = now
            logger.error(
                "rate limits: Redis does not answer (%s: %s); each process limits what it "
                "sees itself until it is back",
                type(error).__name__,
                error,
            )

    def _prune(self, now: float) -> None:
        ended = [key for key, counter in self._counters.items() if counter.ends <= now]
        for key in ended:
            del self._counters[key]
        excess = len(self._counters) - MAX_COUNTERS
        if excess > 0:
            doomed = sorted(self._counters.values(), key=lambda c: c.count)
            for counter in doomed[:excess]:
                del self._counters[counter.key]

    def counts(self, keys: Iterable[str]) -> dict[str, int]:
        """This process's view of some counters (tests)."""
        with self._lock:
            return {key: self._counters[key].count for key in keys if key in self._counters}

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = None
        self._counters = {}


def _window_text(seconds: float) -> str:
    if seconds % 3600 == 0:
        hours = int(seconds // 3600)
        return "hour" if hours == 1 else f"{hours} hours"
    if seconds % 60 == 0:
        minutes = int(seconds // 60)
        return "minute" if minutes == 1 else f"{minutes} minutes"
    return f"{seconds:g} seconds"


limiter = Limiter()
os.register_at_fork(after_in_child=limiter._after_fork)
