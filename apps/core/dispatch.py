"""Sending Celery tasks for rows that record their own queued state (build steps, agent tasks).

The row is written first, with the task id, and the message leaves once the transaction
commits. A broker that does not answer then must not turn a request that has been saved into a
500, nor leave the row queued forever: the send is logged and dropped, and the owner's sweep
sends the message again for rows that stayed queued too long (``stale_queued``). Sending the
same task id twice is safe: the tasks start a row only once (they lock it and check its state
and heartbeat).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
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
                task.name, task_id, type(exc).__name__, exc,
            )  # fmt: skip

    transaction.on_commit(send)


def stale_queued_before() -> datetime:
    """Rows queued before this long ago have not been started: their message is sent again."""
    return timezone.now() - timedelta(seconds=settings.BUILD_STEP_STALE_SECONDS)
