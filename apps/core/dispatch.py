"""Sending Celery tasks for rows that record their own queued state (build steps, agent tasks).

The row is written first, with the task id, and the message leaves once the transaction
commits. A broker that does not answer then must not turn a request that has been saved into a
500, nor leave the row queued forever: the send is logged and dropped, and the owner's sweep
sends the message again for rows that stayed queued too long (``resend_stale_queued``).
Sending the same task id twice is safe: the tasks start a row only once (they lock it and
check its state and heartbeat).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Model
from django.utils import timezone

logger = logging.getLogger(__name__)


def send_on_commit(task: Any, *, args: list[Any], task_id: str, queue: str | None = None) -> None:
    """Send ``task`` once the current transaction commits; a broker error is logged, not
    raised (the sweep sends it again)."""

    def send() -> None:
        options = {"queue": queue} if queue else {}
        try:
            task.apply_async(args=args, task_id=task_id, **options)
        except Exception as exc:
            logger.warning(
                "could not send %s (task %s): %s: %s; the sweep sends it again",
                task.name,
                task_id,
                type(exc).__name__,
                exc,
            )

    transaction.on_commit(send)


def stale_before() -> datetime:
    """Work queued, or last reported, before this is stale: ``BUILD_STEP_STALE_SECONDS`` ago."""
    return timezone.now() - timedelta(seconds=settings.BUILD_STEP_STALE_SECONDS)


def resend_stale_queued(
    model: type[Model],
    task: Any,
    *,
    status: str,
    queue: str | None = None,
    on_resent: Callable[[Any], None] | None = None,
) -> int:
    """Send again the message of every ``model`` row still in ``status`` (queued) that was
    queued more than ``BUILD_STEP_STALE_SECONDS`` ago; its ``queued_at`` restarts, so it is
    not sent again before it is stale again. Returns how many were sent."""
    cutoff = stale_before()
    stale = model.objects.filter(status=status, queued_at__lt=cutoff)  # type: ignore[attr-defined]
    resent = 0
    for pk in stale.values_list("pk", flat=True):
        with transaction.atomic():
            row = stale.select_for_update(of=("self",)).filter(pk=pk).first()
            if row is None:
                continue
            row.queued_at = timezone.now()
            row.save(update_fields=["queued_at"])
            if on_resent is not None:
                on_resent(row)
            send_on_commit(task, args=[row.pk], task_id=row.celery_task_id, queue=queue)
            resent += 1
    return resent
