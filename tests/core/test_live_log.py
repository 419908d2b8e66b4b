"""The live log (``apps.core.logging.LiveLogHandler``): what the Logs page shows, kept bounded in
Redis, published on the ``logs`` channel, secrets out; and logging never fails or waits because
of it, Redis down included."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from apps.core import events
from apps.core import redis as core_redis
from apps.core.logging import (
    LiveLogHandler,
    live_handler_attach,
    live_log_key,
    live_log_recent,
    redact,
)
from apps.core.redis import redis_client
from apps.core.request_context import request_id_var


@pytest.fixture
def published(monkeypatch) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    def publish(channel: str, event: str, data: dict[str, Any]) -> None:
        events.validate_event(channel, event, data)
        sent.append(data)

    monkeypatch.setattr(events, "publish", publish)
    return sent


@pytest.fixture
def logger() -> Iterator[tuple[logging.Logger, LiveLogHandler]]:
    """A logger of its own with a live handler keeping 10 lines (not propagating: the suite's
    own handlers stay out of it)."""
    redis_client().delete(live_log_key())
    handler = LiveLogHandler(level="WARNING", kept=10)
    log = logging.getLogger("tests.live_log")
    log.addHandler(handler)
    log.propagate = False
    yield log, handler
    log.removeHandler(handler)
    redis_client().delete(live_log_key())


def test_lines_at_the_level_are_kept_bounded_newest_first_and_published(logger, published):
    log, handler = logger
    log.info("below the level")
    token = request_id_var.set("req-42")
    try:
        for number in range(25):
            log.warning("line %d", number)
    finally:
        request_id_var.reset(token)
    handler.flush(5)

    kept = live_log_recent(limit=100)
    assert [line["message"] for line in kept] == [f"line {n}" for n in range(24, 14, -1)]
    assert redis_client().llen(live_log_key()) == 10
    assert kept[0]["level"] == "WARNING" and kept[0]["logger"] == "tests.live_log"
    assert kept[0]["request_id"] == "req-42"
    assert [line["message"] for line in published] == [f"line {n}" for n in range(25)]


def test_no_secret_leaves_in_a_line(logger, published):
    log, handler = logger
    secrets = [
        "ao_0123abcd_Zm9vYmFyYmF6cXV4cXV1eA", "sk-proj-abcdefghijklmnop", "hunter2", "s3cr3tpw",
        "xai-0123456789abcdef",
    ]  # fmt: skip
    log.warning(
        "calling with key %s, Authorization: Bearer %s password=%s redis://u:%s@host:6379/0",
        *secrets[:4],
    )
    try:
        raise ValueError(f"upstream refused api_key={secrets[4]}")
    except ValueError:
        log.exception("it failed")
    handler.flush(5)

    kept = live_log_recent()
    assert len(kept) == 2 and len(published) == 2
    text = repr(kept) + repr(published)
    for secret in secrets:
        assert secret not in text
    assert "ao_0123abcd_[redacted]" in text  # the prefix names the key, and is not secret
    assert "ValueError" in kept[0]["message"]


def test_redact_keeps_ordinary_words():
    line = "Not Found: /admin/tokens/ (token bucket of key ao_prefix refilled) status=404"
    assert redact(line) == line


def test_logging_neither_raises_nor_waits_when_redis_is_down(logger, published, monkeypatch):
    log, handler = logger
    down = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    monkeypatch.setattr(core_redis, "redis_client", lambda: down)
    started = time.monotonic()
    for number in range(3000):
        log.error("while Redis is down %d", number)
    assert time.monotonic() - started < 2.0  # the queue is bounded: drops, never waits
    handler.flush(5)
    assert published == []
    log.error("still no exception")  # dropped for a while after the failure


def test_the_bus_and_the_handler_itself_are_not_published(logger, published, monkeypatch):
    log, handler = logger
    channel_layer = logging.getLogger("channels_redis.core")
    bus = logging.getLogger("apps.core.events")
    for other in (channel_layer, bus):
        other.addHandler(handler)
        other.propagate = False

    def publish_that_logs(channel: str, event: str, data: dict[str, Any]) -> None:
        published.append(data)
        logging.getLogger("tests.live_log").warning("logged while publishing")
        bus.warning("could not publish")

    monkeypatch.setattr(events, "publish", publish_that_logs)
    try:
        channel_layer.warning("connection lost")
        bus.warning("could not publish log.record on logs")
        log.warning("the one line")
        handler.flush(5)
        time.sleep(0.2)
    finally:
        for other in (channel_layer, bus):
            other.removeHandler(handler)
            other.propagate = True
    assert [line["message"] for line in published] == ["the one line"]
    assert [line["message"] for line in live_log_recent()] == ["the one line"]


def test_a_celery_worker_gets_the_handler_back_once():
    root = logging.getLogger("tests.live_log.celery-root")
    live_handler_attach(root)
    live_handler_attach(root)
    assert sum(isinstance(h, LiveLogHandler) for h in root.handlers) == 1
    root.handlers.clear()


def test_the_settings_attach_it_to_the_root_logger():
    live = [h for h in logging.getLogger().handlers if isinstance(h, LiveLogHandler)]
    assert len(live) == 1 and live[0].level == logging.WARNING
