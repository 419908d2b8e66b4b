"""Event-loop lag (``apps.core.loop_lag``): an idle loop shows next to none, a held one shows
how long it was held; in a real server, held by the test stopping the process (SIGSTOP, as a
process kept off its core by others is), through ``/metrics``."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
import uuid

import httpx
import pytest
import uvloop
from prometheus_client import REGISTRY

from apps.core.loop_lag import BUCKETS, watch_loop_lag
from tests.support.processes import AsgiServer

NAME = "ai_orchestra_event_loop_lag_seconds"
HELD = 0.3
QUICK = 0.005  # an idle loop's lag: a millisecond of uvloop's clock, a busy machine's hiccup


def figures(read) -> dict[str, float]:
    """count, sum and the cumulative bucket counts (``le`` as Prometheus writes it)."""
    bounds = [*(repr(float(bound)) for bound in BUCKETS), "+Inf"]
    values = {"count": read(f"{NAME}_count", None), "sum": read(f"{NAME}_sum", None)}
    values |= {le: read(f"{NAME}_bucket", le) for le in bounds}
    return {key: value or 0.0 for key, value in values.items()}


def in_process(role: str) -> dict[str, float]:
    def read(name: str, le: str | None) -> float | None:
        labels = {"role": role} | ({"le": le} if le else {})
        return REGISTRY.get_sample_value(name, labels)

    return figures(read)


def scraped(text: str, role: str) -> dict[str, float]:
    def read(name: str, le: str | None) -> float | None:
        labels = f'role="{role}"' + (f',le="{le}"' if le else "")
        labels_swapped = (f'le="{le}",' if le else "") + f'role="{role}"'
        for wanted in {labels, labels_swapped}:
            match = re.search(rf"^{name}{{{wanted}}} (\S+)$", text, re.MULTILINE)
            if match:
                return float(match.group(1))
        return None

    return figures(read)


def over(figures: dict[str, float], seconds: float) -> float:
    """Samples above ``seconds`` (a bucket bound)."""
    return figures["count"] - figures[repr(float(seconds))]


@pytest.mark.parametrize("new_loop", [asyncio.new_event_loop, uvloop.new_event_loop])
def test_an_idle_loop_shows_next_to_no_lag_and_a_held_one_how_long(new_loop, settings):
    settings.EVENT_LOOP_LAG_SECONDS = 0.01
    role = f"test-{uuid.uuid4().hex[:8]}"

    async def idle_then_held() -> tuple[dict[str, float], dict[str, float]]:
        watch_loop_lag(role)
        watch_loop_lag(role)  # once per loop
        await asyncio.sleep(0.5)
        idle = in_process(role)
        time.sleep(HELD)  # a callback that holds the loop
        await asyncio.sleep(0.05)
        return idle, in_process(role)

    loop = new_loop()
    try:
        idle, held = loop.run_until_complete(idle_then_held())
    finally:
        loop.close()
    # One timer every 10 ms (two watches made one), most on time.
    assert 15 <= idle["count"] <= 60
    assert idle[repr(QUICK)] >= idle["count"] / 2
    assert over(idle, 0.25) == 0
    # The held loop: one sample as late as it was held, then on time again.
    assert over(held, 0.25) == 1
    assert held["sum"] - idle["sum"] >= HELD - 0.02
    assert held["count"] > idle["count"] + 1


def test_no_lag_is_measured_when_it_is_turned_off(settings):
    settings.EVENT_LOOP_LAG_SECONDS = 0
    role = f"test-{uuid.uuid4().hex[:8]}"

    async def idle() -> None:
        watch_loop_lag(role)
        await asyncio.sleep(0.1)

    asyncio.run(idle())
    assert in_process(role)["count"] == 0


@pytest.mark.django_db(transaction=True)
def test_a_web_process_reports_its_loop_lag_and_a_stop_shows_in_it(server_env, tmp_path):
    env = {**server_env, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    env["EVENT_LOOP_LAG_SECONDS"] = "0.02"
    server = AsgiServer(env, name="uvicorn-loop-lag", server="uvicorn").start()
    try:

        def metrics() -> dict[str, float]:
            answer = httpx.get(f"{server.url}/metrics", timeout=10)
            assert answer.status_code == 200
            return scraped(answer.text, "web")

        time.sleep(1.0)  # watched from the first event (uvicorn's lifespan startup)
        idle = metrics()
        os.kill(server.process.pid, signal.SIGSTOP)  # the loop cannot run, as if off its core
        time.sleep(HELD)
        os.kill(server.process.pid, signal.SIGCONT)
        time.sleep(0.2)
        held = metrics()
    finally:
        server.stop()
    assert idle["count"] >= 20
    assert idle[repr(QUICK)] >= idle["count"] / 2
    assert over(held, 0.25) - over(idle, 0.25) == 1
    assert held["sum"] - idle["sum"] >= HELD - 0.05
