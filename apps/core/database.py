"""The database going away: how to tell it from a bug, retry once, and answer the caller.

A database restart kills every open connection. The pool checks a connection before handing
it out (``OPTIONS["pool"]["check"]``), so a new request gets a live one; what remains is work
that held a connection across the restart (a Celery task, a long stream), which may do one
write again on a new connection (``retry_once_on_dead_connection``), and callers who arrive
while the database is down, who get a 503 with ``Retry-After`` (``database_unavailable``) and
never a 500.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from django.db import InterfaceError, OperationalError, connection

logger = logging.getLogger(__name__)

# What a database that is down, restarting or unreachable raises (a pool that waited in vain
# raises psycopg_pool's PoolTimeout, which Django hands on as an OperationalError).
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = 2
UNAVAILABLE_MESSAGE = "The database is unavailable; retry shortly."

P = ParamSpec("P")
R = TypeVar("R")


def is_database_unavailable(error: BaseException) -> bool:
    return isinstance(error, DATABASE_UNAVAILABLE)


def retry_once_on_dead_connection(function: Callable[P, R]) -> Callable[P, R]:
    """Run ``function`` again, once, on a new connection when its connection turned out to be
    dead. Only for work that is safe to repeat (idempotent, or wholly inside one transaction
    of its own): never inside an outer ``atomic`` block, whose earlier writes died with the
    connection."""

    @functools.wraps(function)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except DATABASE_UNAVAILABLE as error:
            if connection.in_atomic_block:
                raise
            logger.warning("database connection lost (%s); trying again once", error)
            with contextlib.suppress(*DATABASE_UNAVAILABLE):
                connection.close()
            return function(*args, **kwargs)

    return wrapped
