"""The request id of the work in progress, visible to every log line written on its behalf."""

from __future__ import annotations

import re
from contextvars import ContextVar

from .ids import uuid7

REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")


def request_id_from(value: str | None) -> str:
    """Keep a caller's id when it is safe to echo and log; otherwise make a new one."""
    if value and _SAFE_REQUEST_ID.match(value):
        return value
    # Time-ordered, like call ids: the call records' request_id index grows at its edge.
    return uuid7().hex


def current_request_id() -> str:
    return request_id_var.get()
