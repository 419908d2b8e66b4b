"""The ``/ws/`` endpoint; its protocol is described in the README (WebSocket).

The consumer only parses, checks and relays. ``OrchestraConsumer`` is built by topic, each
module a layer on the one below:

- ``connection.py``: Channels' loop, the channel layer outlasting Redis, sending;
- ``caller.py``: authentication, the connection caps, the caller looked at again;
- ``subscriptions.py``: channel-layer groups fed by the event bus;
- ``queries.py``: ``query`` and ``stream``, admitted and handed to a Celery worker;
- ``actions.py``: the message types other apps register;
- ``consumer.py``: each message from the client, checked and handed to its topic.
"""

from .actions import run_socket_action, validation_text
from .caller import (
    AUTH_TIMEOUT_SECONDS,
    CLOSE_TOO_MANY_CONNECTIONS,
    CLOSE_UNAUTHORIZED,
    CLOSE_UNAVAILABLE,
    MIN_PRINCIPAL_CHECK_SECONDS,
)
from .connection import (
    RECEIVE_STOP_SECONDS,
    RELAY_DOWN,
    RELAY_RETRY_SECONDS,
    RelayHealth,
    UnavailableError,
    relay_health,
)
from .consumer import OrchestraConsumer, TokenBucket
from .queries import CANCEL_TIMEOUT_SECONDS, WATCHDOG_INTERVAL, Running

__all__ = [
    "AUTH_TIMEOUT_SECONDS",
    "CANCEL_TIMEOUT_SECONDS",
    "CLOSE_TOO_MANY_CONNECTIONS",
    "CLOSE_UNAUTHORIZED",
    "CLOSE_UNAVAILABLE",
    "MIN_PRINCIPAL_CHECK_SECONDS",
    "RECEIVE_STOP_SECONDS",
    "RELAY_DOWN",
    "RELAY_RETRY_SECONDS",
    "WATCHDOG_INTERVAL",
    "OrchestraConsumer",
    "RelayHealth",
    "Running",
    "TokenBucket",
    "UnavailableError",
    "relay_health",
    "run_socket_action",
    "validation_text",
]
