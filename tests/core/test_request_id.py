from __future__ import annotations

import json
import re
import time

import httpx
import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_caller_request_id_is_returned():
    response = Client().get("/health", headers={"X-Request-ID": "abc-123"})
    assert response["X-Request-ID"] == "abc-123"


def test_request_id_is_generated_when_missing():
    first = Client().get("/health")["X-Request-ID"]
    second = Client().get("/health")["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert first != second


def test_unsafe_request_id_is_replaced():
    response = Client().get("/health", headers={"X-Request-ID": "bad id\nwith newline"})
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])


def json_log_lines(text: str) -> list[dict]:
    lines = []
    for line in text.splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue
    return lines


def test_every_log_line_of_a_request_carries_its_id(asgi_server):
    response = httpx.get(
        f"{asgi_server.url}/api/v1/nothing-here", headers={"X-Request-ID": "trace-77"}
    )
    assert response.headers["X-Request-ID"] == "trace-77"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        matching = [
            line
            for line in json_log_lines(asgi_server.output())
            if line.get("request_id") == "trace-77"
        ]
        if matching:
            break
        time.sleep(0.1)
    assert matching, asgi_server.output()[-2000:]
    line = matching[0]
    assert {"timestamp", "level", "logger", "message"} <= set(line)
    assert line["logger"] == "django.request" and "nothing-here" in line["message"]
