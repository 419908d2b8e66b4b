"""The one admission sequence (``apps/accounts/admission.py``): its steps in order, what an
entry point gets back, and that no entry point asks the limiter but through it. What each entry
point answers to a refusal is tested end to end in ``tests/gateway/test_rate_limits.py`` and
``tests/realtime/test_rate_limits.py``."""

from __future__ import annotations

import ast
import time
from pathlib import Path

import pytest
from django.test import override_settings

from apps.accounts.admission import (
    ADMITTED,
    KeyLimits,
    admit,
    admit_call,
    admit_client,
    counts_tokens,
    settle,
)
from apps.accounts.models import ApiKey

APPS_DIR = Path(__file__).resolve().parents[2] / "apps"
KEY_IDS = iter(range(20_000_000, 30_000_000))
ADDRESSES = (f"198.51.100.{n}" for n in range(1, 255))


@pytest.fixture(autouse=True)
def away_from_the_minute_boundary() -> None:
    """Key windows are the clock's minutes: a test must not straddle two."""
    left = 60 - time.time() % 60
    if left < 5:
        time.sleep(left + 0.05)


@override_settings(RATE_LIMIT_MAX=1, RATE_LIMIT_WINDOW_MS=3_600_200)
def test_the_ip_limit_comes_first_and_a_request_it_refuses_does_not_count_against_the_key():
    client, caller = next(ADDRESSES), KeyLimits(next(KEY_IDS), rpm_limit=5)
    first = admit(client, caller, entry="test")
    assert first.refusal is None and first.requests is not None
    assert first.requests.remaining == 4
    refused = admit(client, caller, entry="test")
    assert refused.refusal is not None and refused.refusal.scope == "ip"
    again = admit_call(caller, entry="test", client=client)
    assert again.requests is not None and again.requests.remaining == 3, "counted once, not twice"


@override_settings(RATE_LIMIT_MAX=1, RATE_LIMIT_WINDOW_MS=3_600_300)
def test_admit_client_is_the_ip_step_alone():
    client = next(ADDRESSES)
    assert admit_client(client, entry="test") is None
    refusal = admit_client(client, entry="test")
    assert refusal is not None and refusal.scope == "ip" and refusal.retry_after_seconds >= 1


def test_a_caller_without_key_limits_is_admitted_with_the_shared_answer():
    """``/v1`` sends ``x-ratelimit-*`` only when the answer is not ``ADMITTED`` itself."""
    assert admit(next(ADDRESSES), None, entry="test") is ADMITTED
    assert admit_call(KeyLimits(), entry="test") is ADMITTED
    assert admit_call(KeyLimits(next(KEY_IDS)), entry="test") is ADMITTED


def test_settled_tokens_spend_the_key_tpm_limit():
    caller = KeyLimits(next(KEY_IDS), tpm_limit=10)
    assert counts_tokens(caller)
    admitted = admit_call(caller, entry="test")
    assert admitted.refusal is None and admitted.tokens is not None
    assert admitted.tokens.remaining == 10
    settle(caller, tokens=10)
    refused = admit_call(caller, entry="test")
    assert refused.refusal is not None and refused.refusal.scope == "tokens"


def test_tokens_are_counted_only_for_a_key_with_a_tpm_limit():
    assert not counts_tokens(KeyLimits(next(KEY_IDS), rpm_limit=5))
    assert not counts_tokens(KeyLimits(None, tpm_limit=5))  # a session has no key
    caller = KeyLimits(next(KEY_IDS), rpm_limit=5)
    settle(caller, tokens=1_000)  # nothing reads it: no refusal follows
    assert admit_call(caller, entry="test").refusal is None


def test_key_limits_of_an_api_key_or_of_none():
    assert KeyLimits.of(None) == KeyLimits()
    assert KeyLimits.of(ApiKey(pk=7, rpm_limit=3, tpm_limit=None)) == KeyLimits(7, 3, None)


def test_no_module_but_the_admission_sequence_asks_the_limiter():
    """The admission sequence, and the budgets' counting it asks (``budgets.py``, whose spend
    counters the limiter keeps and shares)."""
    allowed = {APPS_DIR / "accounts" / name for name in ("limits.py", "admission.py", "budgets.py")}
    offenders = []
    for path in APPS_DIR.rglob("*.py"):
        if path in allowed or "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            named = (isinstance(node, ast.Name) and node.id == "limiter") or (
                isinstance(node, ast.alias) and node.name == "limiter"
            )
            if named:
                offenders.append(f"{path.relative_to(APPS_DIR)}:{getattr(node, 'lineno', '?')}")
    assert offenders == []
