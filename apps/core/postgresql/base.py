"""Django's PostgreSQL backend with one change: a process that just found the database
unavailable says so at once for a moment, instead of making every caller wait
``DATABASE_POOL_TIMEOUT`` for a connection that will not come.

When the pool fails to hand out a connection (the database is down, or every connection stayed
busy for the whole timeout), the process remembers it for ``REMEMBERED_SECONDS``; meanwhile a
new connection fails at once (a 503 with ``Retry-After`` for a request). After that, callers
ask the pool again with a short timeout (``PROBE_SECONDS``) until one gets a connection, which
clears the state: the first request after the database is back goes through, waiting at most
that long. While the database answers, this adds one comparison per new connection and nothing
else.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
from django.db.backends.postgresql import base

from apps.core.database import UNAVAILABLE_MESSAGE

REMEMBERED_SECONDS = 1.0
PROBE_SECONDS = 1.0


class DatabaseWrapper(base.DatabaseWrapper):
    _unavailable_until = 0.0  # per process (a class attribute): every thread's connection
    _unavailable = False

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        if not self.pool:
            return super().get_new_connection(conn_params)
        cls = type(self)
        try:
            if cls._unavailable:
                if time.monotonic() < cls._unavailable_until:
                    raise psycopg.OperationalError(f"{UNAVAILABLE_MESSAGE} (found just now)")
                self.pool.open()
                timeout = min(PROBE_SECONDS, self.pool.timeout)
                self.pool.putconn(self.pool.getconn(timeout=timeout))  # it is back
                cls._unavailable = False
            return super().get_new_connection(conn_params)
        except psycopg.OperationalError:
            if not cls._unavailable or time.monotonic() >= cls._unavailable_until:
                cls._unavailable_until = time.monotonic() + REMEMBERED_SECONDS
            cls._unavailable = True
            raise
