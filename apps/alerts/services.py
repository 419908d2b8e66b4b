"""Raising, resolving and acknowledging alerts, and notifying the channels that want them.

Alerts are raised and resolved after each periodic health run (``alerts_evaluate``, the
receiver of ``apps.core.health.health_ran``), in beat's process: from the failing health checks
and from the registered alert rules (thresholds). Notifications of that run are sent there and
then (``notification_deliveries_send_due``), so a stopped worker or broker, which the run may
be reporting, does not hold them up; a failed send is tried again on a Celery worker after a
growing wait, and by the next run if no worker took it. Nothing here raises to its caller for a
channel that fails: the delivery log says what happened.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.core.crypto import encrypt
from apps.core.events import publish, validate_event
from apps.core.health import DISABLED, ERROR, OK, CheckOutcome
from apps.core.registry import alert_rules

from . import notify
from .models import (
    Alert,
    AlertStatus,
    DeliveryStatus,
    NotificationChannel,
    NotificationDelivery,
    NotificationEvent,
    Severity,
)

logger = logging.getLogger(__name__)

HEALTH = "health"
RETRY_BASE_SECONDS = 30.0
SENDING_STALE_SECONDS = 300.0


def _event_data(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.pk,
        "cause": alert.cause,
        "kind": alert.kind,
        "title": alert.title,
        "detail": alert.detail,
        "severity": alert.severity,
        "status": alert.status,
    }


def _announce(event: str, data: dict[str, Any]) -> None:
    """Publish on ``alerts`` once the transaction commits; a channel layer that does not answer
    (Redis down, which may be the very alert) is logged, never raised."""
    validate_event("alerts", event, data)

    def send() -> None:
        try:
            publish("alerts", event, data)
        except Exception as error:
            logger.warning("could not publish %s (%s)", event, type(error).__name__)

    transaction.on_commit(send)


def _deliveries_for(alert: Alert, event: str) -> None:
    now = timezone.now()
    channels = NotificationChannel.objects.filter(enabled=True)
    if event == NotificationEvent.RESOLVED:
        channels = channels.filter(notify_resolved=True)
    title = f"[{alert.severity.upper()}] {alert.title}"
    if event == NotificationEvent.RESOLVED:
        title = f"[RESOLVED] {alert.title}"
    NotificationDelivery.objects.bulk_create(
        NotificationDelivery(
            channel=channel,
            alert=alert,
            event=event,
            title=title[:250],
            body=alert.detail,
            severity=alert.severity,
            next_attempt_at=now,
        )
        for channel in channels
        if channel.accepts(alert.severity)
    )


def alert_raise(
    *,
    cause: str,
    kind: str,
    title: str,
    detail: str = "",
    severity: str = Severity.WARNING,
    data: dict[str, Any] | None = None,
) -> tuple[Alert, bool]:
    """The one open alert of ``cause``: made (announced, its notifications queued) if there was
    none, else brought up to date (seen again, its detail and severity as now). Returns it and
    whether it is new."""
    now = timezone.now()
    Severity(severity)
    with transaction.atomic():
        alert = (
            Alert.objects.select_for_update()
            .filter(cause=cause)
            .exclude(status=AlertStatus.RESOLVED)
            .first()
        )
        if alert is not None:
            alert.last_seen_at, alert.occurrences = now, alert.occurrences + 1
            alert.detail, alert.severity, alert.data = detail, severity, data or {}
            alert.save(update_fields=["last_seen_at", "occurrences", "detail", "severity", "data"])
            return alert, False
        try:
            with transaction.atomic():
                alert = Alert.objects.create(
                    cause=cause,
                    kind=kind,
                    title=title[:200],
                    detail=detail,
                    severity=severity,
                    data=data or {},
                    raised_at=now,
                    last_seen_at=now,
                )
        except IntegrityError:  # raised meanwhile by another run: that one is the alert
            return Alert.objects.exclude(status=AlertStatus.RESOLVED).get(cause=cause), False
        _deliveries_for(alert, NotificationEvent.RAISED)
        _announce("alert.raised", _event_data(alert))
    logger.warning("alert raised: %s (%s): %s", alert.title, alert.severity, detail[:200])
    return alert, True


def alert_resolve(*, cause: str) -> Alert | None:
    """Resolve the open alert of ``cause``, if any (announced, channels told)."""
    with transaction.atomic():
        alert = (
            Alert.objects.select_for_update()
            .filter(cause=cause)
            .exclude(status=AlertStatus.RESOLVED)
            .first()
        )
        if alert is None:
            return None
        alert.status, alert.resolved_at = AlertStatus.RESOLVED, timezone.now()
        alert.save(update_fields=["status", "resolved_at"])
        _deliveries_for(alert, NotificationEvent.RESOLVED)
        _announce("alert.resolved", _event_data(alert))
    logger.info("alert resolved: %s", alert.title)
    return alert


def alert_acknowledge(*, alert: Alert, by: User) -> Alert:
    """An operator takes an open alert on; it stays until its cause is gone."""
    if not by.has_perm("accounts.operate_platform"):
        raise PermissionDenied("Acknowledging an alert needs the operator role.")
    with transaction.atomic():
        alert = Alert.objects.select_for_update().get(pk=alert.pk)
        if alert.status != AlertStatus.OPEN:
            raise ValidationError(
                f"This alert is {alert.status}: only an open one is acknowledged."
            )
        alert.status, alert.acknowledged_at, alert.acknowledged_by = (
            AlertStatus.ACKNOWLEDGED, timezone.now(), by,
        )  # fmt: skip
        alert.save(update_fields=["status", "acknowledged_at", "acknowledged_by"])
        _announce("alert.acknowledged", {**_event_data(alert), "acknowledged_by": by.username})
    return alert


def _open_causes(kind: str) -> set[str]:
    open_alerts = Alert.objects.filter(kind=kind).exclude(status=AlertStatus.RESOLVED)
    return set(open_alerts.values_list("cause", flat=True))


def _safely(what: str, action: Callable[[], Any]) -> None:
    try:
        action()
    except Exception:
        logger.exception("alerts: %s failed", what)


def _raise_safely(**fields: Any) -> None:
    _safely(fields["cause"], partial(alert_raise, **fields))


def _resolve_safely(cause: str) -> None:
    _safely(cause, partial(alert_resolve, cause=cause))


def alerts_from_health(*, outcomes: list[CheckOutcome]) -> None:
    """An alert per failing check (``error`` is critical, ``degraded`` a warning), resolved
    once the check passes (or is switched off, or gone)."""
    seen = set()
    for outcome in outcomes:
        cause = f"{HEALTH}:{outcome.name}"
        seen.add(cause)
        result = outcome.result
        if outcome.failing:
            _raise_safely(
                cause=cause,
                kind=HEALTH,
                title=f"Health check {outcome.check.title}: {result.status}",
                detail=result.message,
                severity=Severity.CRITICAL if result.status == ERROR else Severity.WARNING,
                data={"check": outcome.name, "status": result.status},
            )
        elif result.status in (OK, DISABLED):
            _resolve_safely(cause)
    for cause in _open_causes(HEALTH) - seen:
        _resolve_safely(cause)


def alerts_from_rules() -> None:
    """Each registered rule's firings raised, and its alerts that no longer fire resolved."""
    for rule in alert_rules.values():
        try:
            firings = rule.evaluate()
        except Exception:
            logger.exception("alert rule %s failed; its alerts stay as they are", rule.kind)
            continue
        firing = set()
        for found in firings:
            cause = f"{rule.kind}:{found.key}"
            firing.add(cause)
            _raise_safely(
                cause=cause,
                kind=rule.kind,
                title=found.title,
                detail=found.detail,
                severity=found.severity,
                data=found.data,
            )
        for cause in _open_causes(rule.kind) - firing:
            _resolve_safely(cause)


def alerts_prune() -> int:
    """Resolved alerts (and their deliveries) older than ``ALERT_RETENTION_DAYS`` go, and so
    do test deliveries."""
    cutoff = timezone.now() - timedelta(days=settings.ALERT_RETENTION_DAYS)
    deleted, _ = Alert.objects.filter(status=AlertStatus.RESOLVED, resolved_at__lt=cutoff).delete()
    NotificationDelivery.objects.filter(alert=None, created_at__lt=cutoff).delete()
    return deleted


def alerts_evaluate(*, outcomes: list[CheckOutcome]) -> None:
    """After a health run: alerts from its outcomes and from the rules, old ones pruned, the
    notifications due sent. Each part's failure is logged and the others go on."""
    _safely("the health alerts", lambda: alerts_from_health(outcomes=outcomes))
    _safely("the alert rules", alerts_from_rules)
    _safely("pruning", alerts_prune)
    _safely("sending notifications", notification_deliveries_send_due)


def health_ran_receiver(sender: Any, outcomes: list[CheckOutcome], **kwargs: Any) -> None:
    alerts_evaluate(outcomes=outcomes)


# --- notification channels ---------------------------------------------------------------------


def _checked_url(url: str) -> str:
    url = url.strip()
    try:
        return notify.url_scheme(url)
    except ValueError as error:
        raise ValidationError({"url": str(error)}) from None


def notification_channel_create(
    *,
    name: str,
    url: str,
    min_severity: str = Severity.WARNING,
    notify_resolved: bool = True,
    enabled: bool = True,
) -> NotificationChannel:
    service = _checked_url(url)
    channel = NotificationChannel(
        name=name,
        service=service,
        url_encrypted=encrypt(url.strip()),
        min_severity=min_severity,
        notify_resolved=notify_resolved,
        enabled=enabled,
    )
    channel.full_clean()
    channel.save()
    return channel


def notification_channel_update(
    *, channel: NotificationChannel, url: str | None = None, **fields: Any
) -> NotificationChannel:
    """Change the fields given; ``url`` only when a new one is given (it is write-only)."""
    if url:
        channel.service = _checked_url(url)
        channel.url_encrypted = encrypt(url.strip())
    for name, value in fields.items():
        if name not in ("name", "min_severity", "notify_resolved", "enabled"):
            raise ValidationError(f"{name} cannot be changed")
        setattr(channel, name, value)
    channel.full_clean()
    channel.save()
    return channel


def notification_channel_test(*, channel: NotificationChannel) -> NotificationDelivery:
    """Send a test notification now (the admin's and the API's test button); the delivery
    says whether it went."""
    delivery = NotificationDelivery.objects.create(
        channel=channel,
        event=NotificationEvent.TEST,
        title="AI Orchestra: test notification",
        body=f"A test of the notification channel {channel.name!r}.",
        severity=Severity.INFO,
        next_attempt_at=timezone.now(),
    )
    return notification_delivery_send(delivery_id=delivery.pk, retry=False)


def _claim(delivery_id: int) -> NotificationDelivery | None:
    """Take a due delivery for sending, unless another process has it."""
    now = timezone.now()
    stale = now - timedelta(seconds=SENDING_STALE_SECONDS)
    claimed = (
        NotificationDelivery.objects.filter(pk=delivery_id)
        .filter(
            Q(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
            | Q(status=DeliveryStatus.SENDING, next_attempt_at__lt=stale)
        )
        .update(status=DeliveryStatus.SENDING, next_attempt_at=now, attempts=F("attempts") + 1)
    )
    if not claimed:
        return None
    return NotificationDelivery.objects.select_related("channel").get(pk=delivery_id)


def _rate_limited(channel: NotificationChannel) -> bool:
    since = timezone.now() - timedelta(minutes=1)
    sent = NotificationDelivery.objects.filter(
        channel=channel, status=DeliveryStatus.SENT, sent_at__gte=since
    ).count()
    return sent >= settings.NOTIFICATION_RATE_PER_MINUTE


def notification_delivery_send(*, delivery_id: int, retry: bool = True) -> NotificationDelivery:
    """One attempt at a due delivery (a delivery not due, or taken by another process, is
    returned as it is). A failure is kept as the delivery's error and, with ``retry``, tried
    again after 30 s, 60 s, 120 s... up to ``NOTIFICATION_MAX_ATTEMPTS`` attempts."""
    delivery = _claim(delivery_id)
    if delivery is None:
        return NotificationDelivery.objects.get(pk=delivery_id)
    channel = delivery.channel
    if delivery.event != NotificationEvent.TEST and _rate_limited(channel):
        delivery.status = DeliveryStatus.SKIPPED
        delivery.error = (
            f"more than {settings.NOTIFICATION_RATE_PER_MINUTE} notifications a minute to this "
            "channel"
        )
        delivery.save(update_fields=["status", "error"])
        return delivery
    try:
        notify.send(
            url=channel.url(),
            title=delivery.title,
            body=delivery.body,
            severity=delivery.severity,
            timeout=settings.NOTIFICATION_TIMEOUT_SECONDS,
        )
    except Exception as error:
        message = (
            str(error) if isinstance(error, notify.NotificationError) else type(error).__name__
        )
        delivery.error = message[:500]
        if retry and delivery.attempts < settings.NOTIFICATION_MAX_ATTEMPTS:
            wait = RETRY_BASE_SECONDS * 2 ** (delivery.attempts - 1)
            delivery.status = DeliveryStatus.PENDING
            delivery.next_attempt_at = timezone.now() + timedelta(seconds=wait)
            delivery.save(update_fields=["status", "error", "next_attempt_at"])
            _retry_later(delivery.pk, wait)
        else:
            delivery.status = DeliveryStatus.FAILED
            delivery.save(update_fields=["status", "error"])
        logger.warning(
            "notification to channel %s failed (attempt %d): %s",
            channel.name,
            delivery.attempts,
            delivery.error,
        )
        return delivery
    delivery.status, delivery.sent_at, delivery.error = DeliveryStatus.SENT, timezone.now(), ""
    delivery.save(update_fields=["status", "sent_at", "error"])
    return delivery


def _retry_later(delivery_id: int, wait: float) -> None:
    from .tasks import deliver

    try:
        deliver.apply_async(args=[delivery_id], countdown=wait)
    except Exception as error:  # the next health run sends it instead
        logger.warning("could not queue a notification retry (%s)", type(error).__name__)


def notification_deliveries_send_due() -> int:
    """Send every delivery whose time has come; returns how many were tried."""
    now = timezone.now()
    stale = now - timedelta(seconds=SENDING_STALE_SECONDS)
    due = NotificationDelivery.objects.filter(
        Q(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
        | Q(status=DeliveryStatus.SENDING, next_attempt_at__lt=stale)
    ).order_by("next_attempt_at")
    tried = 0
    for delivery_id in list(due.values_list("pk", flat=True)):
        notification_delivery_send(delivery_id=delivery_id)
        tried += 1
    return tried
