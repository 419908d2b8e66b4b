"""Shared by the fake upstream's tests: request data and clients closed after each test."""

from __future__ import annotations

import socket
from typing import Any

import openai
from openai.types.chat import ChatCompletionMessageParam

from tests.fake_upstream import FakeUpstream

MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "say hello to me"},
]
DEFAULT_CONTENT = "Hello from a lorem ipsum dolor sit amet"

_clients: list[openai.OpenAI] = []


def make_client(fake: FakeUpstream, timeout: float = 5.0, **kwargs: Any) -> openai.OpenAI:
    """A client whose pooled connections are closed after the test, so counts stay exact."""
    options: dict[str, Any] = {"api_key": "k", "max_retries": 0, "timeout": timeout, **kwargs}
    client = openai.OpenAI(base_url=fake.base_url, **options)
    _clients.append(client)
    return client


def close_clients() -> None:
    while _clients:
        _clients.pop().close()


def raw_http(fake: FakeUpstream, payload: bytes) -> bytes:
    """Send raw bytes and read until the server closes, for wire details the SDK hides."""
    with socket.create_connection(("127.0.0.1", fake.port), timeout=5) as sock:
        sock.sendall(payload)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)
