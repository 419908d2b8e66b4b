"""Logging pieces referenced by ``settings.LOGGING``."""

from __future__ import annotations

import logging

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

from .request_context import current_request_id


class RequestIdFilter(logging.Filter):
    """Attach the current request id to every record, so JSON and text lines both carry it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        return True


class JsonFormatter(_JsonFormatter):
    """One JSON object per line: timestamp, level, logger, message, request id and any extras."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("fmt", "{levelname}{name}{message}{request_id}")
        kwargs.setdefault("style", "{")
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", True)
        super().__init__(*args, **kwargs)
