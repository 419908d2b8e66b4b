"""A database that restarts or goes away, against a real PostgreSQL of the test's own (the
shared one stays up for everybody else) and a real daphne pointed at it: a clean restart costs
no request, and an outage is a 503 with ``Retry-After`` on ``/v1`` and REST, never a 500,
while keys used before it keep working for ``API_KEY_OUTAGE_SECONDS`` and ``/health`` says
the database is down within its own timeout."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import openai
import pytest

from tests.support.processes import REPO_ROOT, AsgiServer, PrivatePostgres, PrivateRedis
from tests.support.waiting import eventually

OUTAGE_SECONDS = 8.0  # API_KEY_OUTAGE_SECONDS of the server under test
POOL_TIMEOUT = 2.0
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


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
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
        yield Platform(postgres, server, used, unused)
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

        with ThreadPoolExecutor(8) as load:  # REST callers waiting for the pool meanwhile
            waiting = [load.submit(platform.rest, platform.used_key) for _ in range(8)]
            started = time.monotonic()
            health = httpx.get(f"{platform.server.url}/health", timeout=30)
            health_seconds = time.monotonic() - started
            answers = [future.result() for future in waiting]
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
