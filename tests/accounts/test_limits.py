"""The rate limiter itself (``apps/accounts/limits.py``): counting, sharing through Redis,
going on without it, and who the client is. End-to-end tests through real servers are in
``tests/gateway/test_rate_limits.py`` and ``tests/realtime/test_rate_limits.py``."""

from __future__ import annotations

import logging
import time

import pytest
import redis
from django.conf import settings
from django.test import override_settings

from apps.accounts.limits import (
    Admission,
    Limiter,
    Quota,
    client_address,
    duration,
    ip_bucket,
    scope_client,
    usage_tokens,
)
from tests.fake_upstream import free_port

KEY_IDS = iter(range(10_000_000, 20_000_000))


@pytest.fixture
def shared() -> redis.Redis:
    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter(f"{Limiter().prefix()}*"):
        client.delete(key)
    return client


def process(client: redis.Redis | None = None) -> Limiter:
    """A limiter as one process has it, synced by hand."""
    return Limiter(client or redis.Redis.from_url(settings.REDIS_URL), background=False)


def admit(limiter: Limiter, key_id: int, rpm: int | None = None, tpm: int | None = None):
    return limiter.admit_key(api_key_id=key_id, rpm_limit=rpm, tpm_limit=tpm, entry="test")


@pytest.fixture(autouse=True)
def away_from_the_minute_boundary() -> None:
    """Key windows are the clock's minutes: a test must not straddle two."""
    left = 60 - time.time() % 60
    if left < 15:  # the slowest test waits ~5 s on an absent Redis, then looks 4 s ahead
        time.sleep(left + 0.05)


# --- who the client is ---------------------------------------------------------------------------


def test_without_trusted_proxies_the_peer_is_the_client_whatever_the_header_says():
    assert client_address("203.0.113.9", "10.1.1.1") == "203.0.113.9"
    assert client_address(None, "10.1.1.1") == "unknown"


@override_settings(TRUSTED_PROXIES=["127.0.0.1", "10.0.0.0/8"])
def test_behind_trusted_proxies_the_last_untrusted_hop_is_the_client():
    assert client_address("127.0.0.1", "198.51.100.7") == "198.51.100.7"
    # The client wrote the first entry itself; only what the proxies appended is believed.
    assert client_address("127.0.0.1", "1.2.3.4, 198.51.100.7, 10.0.0.5") == "198.51.100.7"
    assert client_address("127.0.0.1", "garbage, 198.51.100.7") == "198.51.100.7"
    assert client_address("127.0.0.1", "198.51.100.7, garbage") == "127.0.0.1"
    assert client_address("127.0.0.1", None) == "127.0.0.1"
    assert client_address("10.0.0.5", "10.0.0.6") == "10.0.0.6"  # all trusted: the first hop
    # A peer that is not a proxy of ours is the client, header or not.
    assert client_address("203.0.113.9", "198.51.100.7") == "203.0.113.9"


@override_settings(TRUSTED_PROXIES=["127.0.0.1"])
def test_asgi_scopes_join_every_forwarded_header():
    scope = {
        "client": ("127.0.0.1", 5000),
        "headers": [(b"x-forwarded-for", b"1.1.1.1"), (b"x-forwarded-for", b"198.51.100.7")],
    }
    assert scope_client(scope) == "198.51.100.7"
    assert scope_client({"client": ("203.0.113.9", 1), "headers": scope["headers"]}) == (
        "203.0.113.9"
    )
    assert scope_client({"client": None, "headers": []}) == "unknown"


def test_ipv6_clients_count_per_64():
    bucket = "2001:db8:1:2::/64"
    assert ip_bucket("2001:db8:1:2:aaaa::1") == ip_bucket("2001:db8:1:2:bbbb::2") == bucket
    assert ip_bucket("::ffff:192.0.2.1") == "192.0.2.1"
    assert ip_bucket("192.0.2.1") == "192.0.2.1"


# --- the small parts -------------------------------------------------------------------------


def test_durations_are_written_as_openai_writes_them():
    assert [duration(s) for s in (0.02, 1, 1.5, 59.25, 360)] == [
        "20ms",
        "1s",
        "1.5s",
        "59.25s",
        "6m0s",
    ]


def test_usage_tokens_of_every_shape():
    assert usage_tokens({"prompt_tokens": 3, "completion_tokens": 8, "total_tokens": 11}) == 11
    assert usage_tokens({"input_tokens": 5, "output_tokens": 7}) == 12
    assert usage_tokens({"prompt_tokens": 4}) == 4  # embeddings without a total
    assert usage_tokens({"total_tokens": "lots"}) == 0
    assert usage_tokens(None) == 0


def test_headers_say_where_a_key_stands():
    admission = Admission(requests=Quota(3, 2, 41.5), tokens=Quota(1000, -5, 41.5))
    assert admission.headers() == [
        ("x-ratelimit-limit-requests", "3"),
        ("x-ratelimit-remaining-requests", "2"),
        ("x-ratelimit-reset-requests", "41.5s"),
        ("x-ratelimit-limit-tokens", "1000"),
        ("x-ratelimit-remaining-tokens", "0"),
        ("x-ratelimit-reset-tokens", "41.5s"),
    ]


# --- counting ----------------------------------------------------------------------------------


def test_a_key_gets_its_requests_per_minute_then_a_refusal(shared, caplog):
    limiter, key_id = process(), next(KEY_IDS)
    answers = [admit(limiter, key_id, rpm=3) for _ in range(3)]
    assert [a.refusal for a in answers] == [None] * 3
    assert [a.requests.remaining for a in answers if a.requests] == [2, 1, 0]
    with caplog.at_level(logging.WARNING, "apps.accounts.limits"):
        refused = admit(limiter, key_id, rpm=3)
        admit(limiter, key_id, rpm=3)
    assert refused.refusal is not None and refused.refusal.scope == "requests"
    assert 1 <= refused.refusal.retry_after_seconds <= 60
    assert refused.requests == Quota(3, 0, pytest.approx(refused.refusal.retry_after, abs=0.1))
    # Refusals are logged, one line per counter and second (a flood stays out of the logs).
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and f"with API key {key_id}" in lines[0] and "3 requests" in lines[0]


def test_keys_without_limits_are_not_counted(shared):
    limiter = process()
    assert admit(limiter, next(KEY_IDS)) == Admission()
    assert limiter.admit_key(api_key_id=None, rpm_limit=1, tpm_limit=1, entry="t") == Admission()
    assert limiter.counts([]) == {} and not limiter._counters


def test_a_tpm_limit_refuses_once_the_minutes_tokens_are_spent(shared):
    limiter, key_id = process(), next(KEY_IDS)
    assert admit(limiter, key_id, tpm=20).tokens == Quota(20, 20, pytest.approx(30, abs=30))
    limiter.note_tokens(api_key_id=key_id, tpm_limit=20, tokens=11)
    assert admit(limiter, key_id, tpm=20).refusal is None  # 11 spent: the next call may run
    limiter.note_tokens(api_key_id=key_id, tpm_limit=20, tokens=11)
    refused = admit(limiter, key_id, rpm=100, tpm=20)
    assert refused.refusal is not None and refused.refusal.scope == "tokens"
    assert refused.tokens is not None and refused.tokens.remaining == -2
    assert refused.requests is not None and refused.requests.remaining == 100, "not counted"


@override_settings(RATE_LIMIT_MAX=2, RATE_LIMIT_WINDOW_MS=3_600_100)
def test_the_ip_limit_counts_per_address_and_refused_requests_do_not_count(shared):
    limiter = process()
    assert [limiter.check_ip("192.0.2.1", entry="t") for _ in range(2)] == [None, None]
    refusal = limiter.check_ip("192.0.2.1", entry="t")
    assert refusal is not None and refusal.scope == "ip" and "2 requests per" in refusal.message
    assert limiter.check_ip("192.0.2.2", entry="t") is None
    key = limiter.key("ip", 3_600_100, "192.0.2.1", int(time.time() // 3600.1))
    assert limiter.counts([key]) == {key: 2}
    with override_settings(RATE_LIMIT_ENABLED=False):
        assert limiter.check_ip("192.0.2.1", entry="t") is None


def test_limits_hold_across_processes_once_counts_are_shared(shared):
    one, two, key_id = process(), process(), next(KEY_IDS)
    assert admit(one, key_id, rpm=3).refusal is None
    assert admit(two, key_id, rpm=3).refusal is None
    one.sync()
    two.sync()  # sends its own, learns of one's
    assert admit(two, key_id, rpm=3).refusal is None  # the third of the minute
    two.sync()
    one.sync()  # nothing to send: reads what two counted (its count is over a second old)
    assert admit(one, key_id, rpm=3).refusal is None, "read at most once a second"
    one.sync(now=time.time() + 1.5)
    refused = admit(one, key_id, rpm=3)
    assert refused.refusal is not None, "3 made in the minute, by two processes"
    assert int(shared.get(one.key("rpm", key_id, int(time.time() // 60))) or 0) == 4


def test_without_redis_each_process_limits_alone_then_shares_again(shared, caplog):
    key_id = next(KEY_IDS)
    away = redis.Redis(port=free_port(), socket_connect_timeout=0.2, socket_timeout=0.2)
    limiter = process(away)
    with caplog.at_level(logging.WARNING, "apps.accounts.limits"):
        assert admit(limiter, key_id, rpm=2).refusal is None
        limiter.sync()
        limiter.sync(now=time.time() + 2)
        assert limiter.down_since is not None
        assert admit(limiter, key_id, rpm=2).refusal is None
        assert admit(limiter, key_id, rpm=2).refusal is not None, "still limited, here"
        limiter._client = redis.Redis.from_url(settings.REDIS_URL)
        limiter.sync(now=time.time() + 4)
    assert limiter.down_since is None
    messages = [r.getMessage() for r in caplog.records if "Redis" in r.getMessage()]
    assert len(messages) == 2 and "does not answer" in messages[0] and "again" in messages[1]
    # What was counted meanwhile reached Redis once it answered.
    assert int(shared.get(limiter.key("rpm", key_id, int(time.time() // 60))) or 0) == 2
