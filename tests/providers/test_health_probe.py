"""Provider health probes: stored, fed to the breaker, run by the beat task."""

from __future__ import annotations

import time

import pytest

from apps.providers.models import HealthStatus, Provider
from apps.providers.selectors import circuit_breaker_list
from apps.providers.services import provider_probe
from apps.providers.tasks import probe_providers
from tests.support.providers import routing

pytestmark = pytest.mark.django_db(transaction=True)


def test_probe_stores_status_and_latency(two_providers, upstream_a):
    upstream_a.configure(latency_ms=30)
    provider = provider_probe(provider=two_providers["a"])
    stored = Provider.objects.get(pk=provider.pk)
    assert stored.health_status == HealthStatus.OK
    assert stored.health_latency_ms >= 30
    assert stored.health_checked_at is not None


def test_failing_probes_count_against_the_circuit(two_providers, upstream_a):
    routing(breaker_failure_threshold=2)
    upstream_a.configure(status=503)
    for _ in range(2):
        provider = provider_probe(provider=two_providers["a"])
    assert provider.health_status == HealthStatus.ERROR
    assert "503" in provider.health_error or "unavailable" in provider.health_error
    assert {v.provider: v.state for v in circuit_breaker_list()}["a"] == "open"


def test_beat_task_probes_every_enabled_provider(two_providers, celery_worker):
    two_providers["b"].enabled = False
    two_providers["b"].save()
    probe_providers.delay()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if Provider.objects.get(name="a").health_checked_at:
            break
        time.sleep(0.1)
    assert Provider.objects.get(name="a").health_status == HealthStatus.OK
    assert Provider.objects.get(name="b").health_checked_at is None


def test_the_task_is_scheduled_by_beat(settings):
    schedule = settings.CELERY_BEAT_SCHEDULE["probe-providers"]
    assert schedule["task"] == probe_providers.name
