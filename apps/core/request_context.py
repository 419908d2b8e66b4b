"""The request id of the work in progress, visible to every log line written on its behalf."""

from __future__ import annotations

import random
import re
from contextvars import ContextVar

REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")


def request_id_from(value: str | None) -> str:
    """Keep a caller's id when it is safe to echo and log; otherwise make a new one."""
    if value and _SAFE_REQUEST_ID.match(value):
        return value
    return f"{random.getrandbits(128):032x}"  # unique enough, without uuid4's syscall


def current_request_id() -> str:
    return request_id_var.get()
