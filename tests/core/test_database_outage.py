"""A database that restarts or goes away, against a real PostgreSQL of the test's own (the
shared one stays up for everybody else) and a real daphne pointed at it: a clean restart costs
no request, and an outage is a 503 with ``Retry-After`` on ``/v1`` and REST, never a 500,
while keys used before it keep working for ``API_KEY_OUTAGE_SECONDS`` and ``/health`` says
the database is down within its own timeout."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import openai
import pytest
import websockets
from channels_redis.core import RedisChannelLayer
from django.conf import settings

from apps.core.events import group_name
from tests.support.processes import REPO_ROOT, AsgiServer, PrivatePostgres, PrivateRedis
from tests.support.waiting import eventually

OUTAGE_SECONDS = 12.0  # API_KEY_OUTAGE_SECONDS of the server under test
POOL_TIMEOUT = 5.0  # each caller would wait this long, were an outage not remembered
FAST = 3.0  # how long callers during an outage wait for their 503
HEALTH_TIMEOUT = 2.0
SETUP = """
from django.contrib.auth.models import User
from apps.accounts.services import api_key_create
admin = User.objects.create_superuser("admin", "admin@example.com", "not-used")
for name in ("used", "unused"):
    print(api_key_create(user=admin, name=name)[1])
"""


@dataclass
class Platform:
    postgres: PrivatePostgres
    redis: PrivateRedis
    server: AsgiServer
    used_key: str  # used before every outage
    unused_key: str  # never seen by the server

    def chat(self, key: str) -> httpx.Response:
        return httpx.post(
            f"{self.server.url}/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": "fake-model", "messages": [{"role": "user", "content": "Hi"}]},
            timeout=30,
        )

    def rest(self, key: str) -> httpx.Response:
        return httpx.get(
            f"{self.server.url}/api/v1/providers",
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )


def timed(call: Callable[..., httpx.Response], *args: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    answer = call(*args)
    return answer, time.monotonic() - started


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def platform(server_env, upstreams) -> Iterator[Platform]:
    postgres = PrivatePostgres()
    redis = PrivateRedis()  # the private server's records and state stay out of the suite's
    server = None
    try:
        env = {
            **server_env,
            "DATABASE_URL": postgres.create_database("orchestra"),
            "REDIS_URL": redis.url,
            "DATABASE_POOL_TIMEOUT": str(POOL_TIMEOUT),
            "API_KEY_CACHE_SECONDS": "1",
            "API_KEY_OUTAGE_SECONDS": str(OUTAGE_SECONDS),
            "HEALTH_DATABASE_TIMEOUT": str(HEALTH_TIMEOUT),
        }
        manage(env, "migrate", "--noinput")
        output = manage(env, "shell", "-c", SETUP).split()
        used, unused = [word for word in output if word.startswith("ao_")]
        server = AsgiServer(env, name="daphne-private-postgres").start()
        auth = {"Authorization": f"Bearer {used}"}
        provider = httpx.post(
            f"{server.url}/api/v1/providers",
            headers=auth,
            json={"name": "a", "kind": "openai_compatible", "base_url": upstreams["a"].base_url},
            timeout=30,
        ).json()
        synced = httpx.post(
            f"{server.url}/api/v1/providers/{provider['id']}/sync-models", headers=auth, timeout=30
        )
        assert synced.status_code == 200, synced.text
        yield Platform(postgres, redis, server, used, unused)
    finally:
        if server is not None:
            server.stop()
        redis.close()
        postgres.close()


def test_a_clean_restart_of_the_database_costs_no_request(platform):
    for _ in range(3):  # the pool holds connections from before the restart
        assert platform.rest(platform.used_key).status_code == 200
        assert platform.chat(platform.used_key).status_code == 200

    platform.postgres.restart()
    time.sleep(1.2)  # past API_KEY_CACHE_SECONDS: /v1 looks its key up again

    answers = [
        platform.rest(platform.used_key) if n % 2 else platform.chat(platform.used_key)
        for n in range(20)
    ]
    statuses = [answer.status_code for answer in answers]
    assert 500 not in statuses, [answer.text for answer in answers if answer.status_code == 500]
    first, rest = answers[0], answers[1:]
    assert all(answer.status_code == 200 for answer in rest), statuses
    assert first.status_code == 200 or (
        first.status_code == 503 and first.headers.get("retry-after")
    ), statuses


def test_an_outage_is_a_503_with_retry_after_and_known_keys_keep_working(platform):
    assert platform.chat(platform.used_key).status_code == 200  # the key checked just now
    platform.postgres.stop()
    stopped = time.monotonic()
    try:
        time.sleep(1.2)  # past API_KEY_CACHE_SECONDS: the next call looks the key up and fails

        client = openai.OpenAI(
            base_url=f"{platform.server.url}/v1", api_key=platform.used_key, max_retries=0
        )
        completion = client.chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": "Still there?"}]
        )
        assert completion.choices[0].message.content  # the call needs no database

        unknown = platform.chat(platform.unused_key)
        assert unknown.status_code == 503, unknown.text
        assert int(unknown.headers["retry-after"]) >= 1
        assert unknown.headers.get("x-should-retry") != "false"
        error = unknown.json()["error"]
        assert error["code"] == "database_unavailable" and error["type"] == "api_error"
        assert set(error) == {"message", "type", "param", "code"}

        time.sleep(1.5)  # past the moment the process remembers the outage for
        with ThreadPoolExecutor(8) as load:  # REST callers meanwhile
            started = time.monotonic()
            waiting = [load.submit(timed, platform.rest, platform.used_key) for _ in range(8)]
            health = httpx.get(f"{platform.server.url}/health", timeout=30)
            health_seconds = time.monotonic() - started
            answers, seconds = zip(*(future.result() for future in waiting), strict=True)
        assert max(seconds) < FAST, seconds  # not POOL_TIMEOUT each
        assert health.status_code == 503
        assert health.json()["services"]["database"] == "error"
        assert health_seconds < HEALTH_TIMEOUT + 2.5, health_seconds
        for answer in answers:
            assert answer.status_code == 503, answer.text
            assert int(answer.headers["Retry-After"]) >= 1
            assert answer.json()["error"]["code"] == "database_unavailable"
            assert set(answer.json()["error"]) == {"code", "message", "details"}

        time.sleep(max(0.0, stopped + OUTAGE_SECONDS + 0.5 - time.monotonic()))
        expired = platform.chat(platform.used_key)  # past API_KEY_OUTAGE_SECONDS: no longer
        assert expired.status_code == 503, expired.text
    finally:
        platform.postgres.start()

    # The pool reconnects with a back-off; until it has, callers get 503s as above.
    eventually(lambda: platform.rest(platform.used_key).status_code == 200, 20, "REST back")
    assert platform.chat(platform.unused_key).status_code == 200


async def next_of(ws, kind: str) -> dict:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if message["type"] == kind:
            return message


async def test_an_open_websocket_outlives_an_outage_for_the_bounded_time(platform):
    layer = RedisChannelLayer(
        hosts=[platform.redis.url], prefix=settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]
    )
    alert = {
        "type": "bus.event",
        "channel": "alerts",
        "event": "alert.raised",
        "data": {"title": "still here", "severity": "info"},
    }
    headers = {"Authorization": f"Bearer {platform.used_key}"}
    async with websockets.connect(f"{platform.server.ws_url}", additional_headers=headers) as ws:
        await ws.send(json.dumps({"type": "subscribe", "channel": "alerts"}))
        await next_of(ws, "subscribed")
        await asyncio.to_thread(platform.postgres.stop)
        stopped = time.monotonic()
        try:
            await asyncio.sleep(2.5)  # past API_KEY_CACHE_SECONDS: the caller was checked again

            await ws.send(json.dumps({"type": "ping", "id": "p"}))
            assert (await next_of(ws, "pong"))["id"] == "p"
            await ws.send(json.dumps({"type": "subscribe", "channel": "build:1"}))
            assert (await next_of(ws, "subscribed"))["channel"] == "build:1"
            await layer.group_send(group_name("alerts"), alert)
            event = await next_of(ws, "event")
            assert event["channel"] == "alerts" and event["data"]["title"] == "still here"

            # Past API_KEY_OUTAGE_SECONDS nobody has vouched for the key: try again later.
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while time.monotonic() < stopped + OUTAGE_SECONDS + 5:
                    await ws.send(json.dumps({"type": "ping", "id": "late"}))
                    await next_of(ws, "pong")
                    await asyncio.sleep(0.5)
            assert time.monotonic() > stopped + OUTAGE_SECONDS - 1.5  # not before the bound
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4503
        finally:
            await asyncio.to_thread(platform.postgres.start)
            await layer.flush()
