"""Local development and ``make run``: DEBUG off unless asked for, friendly defaults kept.

Django's debug pages (tracebacks, settings, ``REDIS_URL``) show only with ``DEBUG=1`` (or
``true``) in the environment. What a local run needs stays on without them: static files
served by the app and readable text logs (the base settings tie both to DEBUG). SQLite, the
embedded Redis and localhost-only hosts are the base defaults anyway.
"""

from .base import *  # noqa: F403
from .base import LOGGING, env

ENVIRONMENT = "development"
SERVE_STATIC = env.bool("SERVE_STATIC", default=True)
LOG_FORMAT = env("LOG_FORMAT", default="text")
LOGGING["handlers"]["console"]["formatter"] = LOG_FORMAT
