"""Alerts and notifications in process: one alert per cause, acknowledgement by role,
channels written only by admins with their URL encrypted and never shown, deliveries retried,
rate-limited and logged, and a failing channel raising nothing anywhere."""

from __future__ import annotations

import logging

import pytest
from django.test import Client, override_settings

from apps.accounts.models import Role
from apps.alerts.models import Alert, AlertStatus, DeliveryStatus, NotificationDelivery
from apps.alerts.services import (
    alert_raise,
    alert_resolve,
    alerts_evaluate,
    notification_channel_create,
    notification_deliveries_send_due,
)
from apps.core.health import CheckOutcome, CheckResult, HealthCheck, check_title
from tests.support.factories import api_key_issue, bearer, user_create

pytestmark = pytest.mark.django_db


def outcome(name: str, status: str, message: str = "") -> CheckOutcome:
    """An outcome of a stand-in for the check registered as ``name`` (with its title)."""
    check = HealthCheck(
        name, lambda: CheckResult(status), critical=False, cache_seconds=0, title=check_title(name)
    )
    return CheckOutcome(check, CheckResult(status, message), 1.0)


def test_one_open_alert_per_cause_until_it_is_resolved():
    first, created = alert_raise(cause="health:x", kind="health", title="x down")
    again, created_again = alert_raise(
        cause="health:x", kind="health", title="x down", detail="still", severity="critical"
    )
    assert created and not created_again and again.pk == first.pk
    again.refresh_from_db()
    assert again.occurrences == 2 and again.severity == "critical" and again.detail == "still"
    assert alert_resolve(cause="health:x").status == AlertStatus.RESOLVED
    assert alert_resolve(cause="health:x") is None
    later, created_later = alert_raise(cause="health:x", kind="health", title="x down")
    assert created_later and later.pk != first.pk


def test_the_health_run_raises_for_failing_checks_and_resolves_when_they_pass(webhook):
    notification_channel_create(name="hook", url=webhook.url, min_severity="critical")
    alerts_evaluate(
        outcomes=[
            outcome("disk", "degraded", "var has 3% free"),
            outcome("beat", "error", "no heartbeat"),
            outcome("cache", "ok"),
        ]
    )
    assert {a.cause: a.severity for a in Alert.objects.all()} == {
        "health:disk": "warning",
        "health:beat": "critical",
    }
    # Severity routing: the channel takes critical alerts only.
    assert [m["title"] for m in webhook.received] == ["[CRITICAL] Health check Celery beat: error"]
    alerts_evaluate(outcomes=[outcome("disk", "ok"), outcome("beat", "starting")])
    assert Alert.objects.get(cause="health:disk").status == AlertStatus.RESOLVED
    assert Alert.objects.get(cause="health:beat").status == AlertStatus.OPEN  # not known yet
    alerts_evaluate(outcomes=[outcome("disk", "ok")])  # a check gone resolves its alert
    assert Alert.objects.get(cause="health:beat").status == AlertStatus.RESOLVED
    assert webhook.received[-1]["title"] == "[RESOLVED] Health check Celery beat: error"


@override_settings(NOTIFICATION_MAX_ATTEMPTS=2)
def test_a_failing_channel_is_retried_logged_redacted_and_raises_nothing(webhook, caplog):
    channel = notification_channel_create(name="hook", url=webhook.url)
    broken = notification_channel_create(
        name="nowhere", url="json://user:hunter2pass@127.0.0.1:9/hook/t0ps3cret"
    )
    webhook.failures_left = 1
    caplog.set_level(logging.INFO)
    alert_raise(cause="x", kind="test", title="X", severity="warning")
    assert notification_deliveries_send_due() == 2  # nothing raised
    to_hook = NotificationDelivery.objects.get(channel=channel)
    to_nowhere = NotificationDelivery.objects.get(channel=broken)
    assert to_hook.status == DeliveryStatus.PENDING and to_hook.attempts == 1
    assert to_nowhere.status == DeliveryStatus.PENDING and to_nowhere.error
    NotificationDelivery.objects.update(next_attempt_at=to_hook.created_at)  # due again
    notification_deliveries_send_due()
    to_hook.refresh_from_db()
    to_nowhere.refresh_from_db()
    assert to_hook.status == DeliveryStatus.SENT and to_hook.attempts == 2
    assert [m["title"] for m in webhook.received] == ["[WARNING] X"]
    assert to_nowhere.status == DeliveryStatus.FAILED and to_nowhere.attempts == 2
    for secret in ("hunter2pass", "t0ps3cret", webhook.token):
        assert secret not in to_nowhere.error + to_hook.error
        assert secret not in caplog.text


@override_settings(NOTIFICATION_RATE_PER_MINUTE=2)
def test_a_channel_is_rate_limited(webhook):
    notification_channel_create(name="hook", url=webhook.url)
    for index in range(4):
        alert_raise(cause=f"c{index}", kind="test", title=f"T{index}")
    notification_deliveries_send_due()
    statuses = sorted(NotificationDelivery.objects.values_list("status", flat=True))
    assert statuses == ["sent", "sent", "skipped", "skipped"]
    assert len(webhook.received) == 2


def test_the_channel_url_is_encrypted_at_rest_and_never_returned(webhook):
    admin = bearer(api_key_issue(role=Role.ADMIN))
    client = Client()
    made = client.post(
        "/api/v1/notification-channels",
        {"name": "hook", "url": webhook.url},
        content_type="application/json",
        headers=admin,
    )
    assert made.status_code == 201, made.content
    assert made.json()["service"] == "json" and "url" not in made.json()
    from apps.alerts.models import NotificationChannel

    stored = NotificationChannel.objects.get()
    assert webhook.token not in stored.url_encrypted and stored.url() == webhook.url
    listed = client.get("/api/v1/notification-channels", headers=admin)
    assert webhook.token not in listed.content.decode()
    tested = client.post(f"/api/v1/notification-channels/{stored.pk}/test", headers=admin)
    assert tested.json()["status"] == "sent"
    assert webhook.received[0]["title"] == "AI Orchestra: test notification"
    bad = client.post(
        "/api/v1/notification-channels",
        {"name": "x", "url": "nope://x"},
        content_type="application/json",
        headers=admin,
    )
    assert bad.status_code == 400


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR])
def test_only_admins_configure_channels_whatever_the_request_says(role, webhook):
    key = bearer(api_key_issue(role=role))
    channel = notification_channel_create(name="hook", url=webhook.url)
    client = Client()
    sneaky = {**key, "X-Role": "admin", "X-Forwarded-User": "admin", "X-User": "admin"}
    body = {"name": "mine", "url": webhook.url, "role": "admin", "is_superuser": True}
    assert (
        client.post(
            "/api/v1/notification-channels", body, content_type="application/json", headers=sneaky
        ).status_code
        == 403
    )
    changed = client.patch(
        f"/api/v1/notification-channels/{channel.pk}",
        {"enabled": False},
        content_type="application/json",
        headers=sneaky,
    )
    assert changed.status_code == 403
    assert (
        client.post(f"/api/v1/notification-channels/{channel.pk}/test", headers=sneaky).status_code
        == 403
    )
    assert (
        client.delete(f"/api/v1/notification-channels/{channel.pk}", headers=sneaky).status_code
        == 403
    )
    assert webhook.received == []
    channel.refresh_from_db()
    assert channel.enabled


def test_operators_acknowledge_viewers_read():
    alert, _ = alert_raise(cause="x", kind="test", title="X")
    client = Client()
    viewer = bearer(api_key_issue(role=Role.VIEWER))
    listed = client.get("/api/v1/alerts?status=open", headers=viewer)
    assert [a["id"] for a in listed.json()["results"]] == [alert.pk]
    refused = client.post(
        f"/api/v1/alerts/{alert.pk}/acknowledge",
        {"acknowledged_by": "someone"},
        content_type="application/json",
        headers={**viewer, "X-Role": "operator"},
    )
    assert refused.status_code == 403
    assert client.post(f"/api/v1/alerts/{alert.pk}/acknowledge").status_code in (401, 403)
    operator = user_create(role=Role.OPERATOR)
    done = client.post(
        f"/api/v1/alerts/{alert.pk}/acknowledge", headers=bearer(api_key_issue(user=operator))
    )
    assert done.status_code == 200
    assert done.json()["status"] == "acknowledged"
    assert done.json()["acknowledged_by"] == operator.username
    again = client.post(
        f"/api/v1/alerts/{alert.pk}/acknowledge", headers=bearer(api_key_issue(user=operator))
    )
    assert again.status_code == 409


def test_the_alerts_page_lists_and_acknowledges_by_role():
    alert, _ = alert_raise(cause="x", kind="test", title="Something broke")
    viewer, operator = Client(), Client()
    viewer.force_login(user_create(role=Role.VIEWER))
    operator.force_login(user_create(role=Role.OPERATOR))
    page = viewer.get("/admin/alert-list/")
    assert page.status_code == 200 and "Something broke" in page.content.decode()
    assert "Acknowledge</button>" not in page.content.decode()
    assert viewer.post(f"/admin/alert-list/{alert.pk}/acknowledge/").status_code == 403
    assert operator.post(f"/admin/alert-list/{alert.pk}/acknowledge/").status_code == 302
    alert.refresh_from_db()
    assert alert.status == AlertStatus.ACKNOWLEDGED
    resolved = viewer.get("/admin/alert-list/?status=resolved&part=live").content.decode()
    assert "Something broke" not in resolved
