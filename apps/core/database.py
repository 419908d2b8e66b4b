"""The database going away: how to tell it from a bug, wait for it, and answer the caller.

A database restart kills every open connection. The pool checks a connection before handing
it out (``OPTIONS["pool"]["check"]``), so a new request gets a live one; what remains is work
that held a connection across the restart (a Celery task, a long stream), which does its last
write again on a new connection, waiting for a database that is down if need be
(``retry_while_database_unavailable``), and callers who arrive while the database is down, who
get a 503 with ``Retry-After`` (``database_unavailable``) and never a 500.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection

logger = logging.getLogger(__name__)

# What a database that is down, restarting or unreachable raises (a pool that waited in vain
# raises psycopg_pool's PoolTimeout, which Django hands on as an OperationalError).
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = 2
UNAVAILABLE_MESSAGE = "The database is unavailable; retry shortly."
RETRY_FIRST_DELAY = 0.5  # seconds between attempts to reach the database, doubling up to
RETRY_MAX_DELAY = 5.0

P = ParamSpec("P")
R = TypeVar("R")


def is_database_unavailable(error: BaseException) -> bool:
    return isinstance(error, DATABASE_UNAVAILABLE)


def retry_while_database_unavailable(setting: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Run the function again on a new connection when the database did not answer: at once
    (its connection died in a restart), then with a back-off for up to ``settings.<setting>``
    seconds (the database is down), so work that has its result (an LLM's answer, paid for)
    stores it once the database is back instead of losing it. Only for work that is safe to
    repeat (idempotent, or wholly inside one transaction of its own): never inside an outer
    ``atomic`` block, whose earlier writes died with the connection."""

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(function)
        def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
            deadline = time.monotonic() + float(getattr(settings, setting))
            delay = 0.0
            while True:
                try:
                    return function(*args, **kwargs)
                except DATABASE_UNAVAILABLE as error:
                    if connection.in_atomic_block or (delay and time.monotonic() >= deadline):
                        raise
                    if not delay:
                        logger.warning(
                            "database unavailable (%s); %s waits for it",
                            error,
                            function.__qualname__,
                        )
                    with contextlib.suppress(*DATABASE_UNAVAILABLE):
                        connection.close()
                    time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                    delay = min(max(delay * 2, RETRY_FIRST_DELAY), RETRY_MAX_DELAY)

        return wrapped

    return decorate
