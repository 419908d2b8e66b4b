"""A build step in flight while its database restarts or goes away, against real processes of
the test's own: a PostgreSQL it restarts and stops, a Redis (the broker), a Celery worker on
both, and the fake upstream streaming a slow answer. The step keeps the answer it was given:
it is stored once the database answers again, without calling the model a second time, and
never failed as a lost worker."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest

from tests.core.test_database_outage import manage
from tests.fake_upstream import FakeUpstream
from tests.support.processes import CeleryWorker, PrivatePostgres, PrivateRedis
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow

ANSWER = "one two three four five six seven eight"
SLOW = {"content": ANSWER, "chunk_delay_ms": 500}  # eight words: about 4 s of stream
SETUP = """
from apps.agents.models import Agent
from apps.providers.models import LlmModel, Provider
provider = Provider.objects.create(name="a", kind="openai_compatible", base_url="{base_url}",
                                   timeout_seconds=10.0, max_retries=0)
LlmModel.objects.create(provider=provider, name="fake-model", aliases=["chat"])
Agent.objects.create(name="writer", role="writer", model="chat", system_prompt="You write.")
"""
START = """
from apps.agents.models import Agent
from apps.builds.services import build_create
steps = [{"name": "write", "agent": "writer", "prompt": "Write: {input}"}]
print("BUILD", build_create(title="t", steps=steps, by=None, input="a poem").pk)
"""


@dataclass
class Platform:
    postgres: PrivatePostgres
    env: dict[str, str]
    worker: CeleryWorker
    upstream: FakeUpstream

    def start_build(self) -> int:
        self.upstream.reset()
        self.upstream.enqueue(SLOW)
        words = manage(self.env, "shell", "-c", START).split()
        return int(words[words.index("BUILD") + 1])

    def step(self, build_id: int) -> dict | None:
        """The build's step as the database holds it; None while the database is down."""
        try:
            with psycopg.connect(self.postgres.url("orchestra"), connect_timeout=2) as db:
                row = db.execute(
                    "SELECT status, output, error, attempts FROM builds_buildstep "
                    "WHERE build_id = %s",
                    [build_id],
                ).fetchone()
                events = db.execute(
                    "SELECT event, detail FROM builds_buildevent WHERE build_id = %s ORDER BY id",
                    [build_id],
                ).fetchall()
        except psycopg.OperationalError:
            return None
        assert row is not None
        status, output, error, attempts = row
        return {
            "status": status,
            "output": output,
            "error": error,
            "attempts": attempts,
            "events": events,
        }

    def finished_step(self, build_id: int, timeout: float = 40) -> dict:
        def finished() -> dict | None:
            step = self.step(build_id)
            return step if step and step["status"] not in ("queued", "running") else None

        return eventually(finished, timeout, "the step finished")


@pytest.fixture(scope="module")
def platform(server_env, upstreams) -> Iterator[Platform]:
    postgres = PrivatePostgres()
    redis = PrivateRedis()
    worker = None
    try:
        env = {
            **server_env,
            "DATABASE_URL": postgres.create_database("orchestra"),
            "REDIS_URL": redis.url,
            "DATABASE_POOL_TIMEOUT": "2",
        }
        manage(env, "migrate", "--noinput")
        manage(env, "shell", "-c", SETUP.replace("{base_url}", upstreams["a"].base_url))
        worker = CeleryWorker(env, name="celery-private-postgres", concurrency=2)
        # Its broker is the private Redis, which the suite's Celery app does not ping.
        worker.start(ready=lambda: " ready." in worker.output())
        yield Platform(postgres, env, worker, upstreams["a"])
    finally:
        if worker is not None:
            worker.stop()
        redis.close()
        postgres.close()


def streaming(platform: Platform, build_id: int) -> None:
    eventually(
        lambda: (
            (step := platform.step(build_id))
            and step["status"] == "running"
            and platform.upstream.stats()["streams_started"] == 1
        ),
        20,
        "the step streams its answer",
    )


def assert_kept_its_answer(platform: Platform, step: dict) -> None:
    assert step["status"] == "succeeded", (step, platform.worker.output()[-3000:])
    assert step["output"] == ANSWER and step["error"] == "" and step["attempts"] == 1
    events = [event for event, _ in step["events"]]
    assert "succeeded" in events and "failed" not in events and "retried" not in events, events
    assert not any("stopped reporting" in detail for _, detail in step["events"])
    assert platform.upstream.stats()["requests"] == 1  # the model was not asked twice


def test_a_step_in_flight_outlives_a_clean_restart_of_the_database(platform):
    build_id = platform.start_build()
    streaming(platform, build_id)

    platform.postgres.restart()  # pg_ctl restart -m fast: every connection is closed
    assert platform.upstream.stats()["streams_completed"] == 0  # the restart was mid-step

    step = platform.finished_step(build_id)
    assert_kept_its_answer(platform, step)


def test_a_step_that_ends_while_the_database_is_down_is_stored_once_it_is_back(platform):
    build_id = platform.start_build()
    streaming(platform, build_id)

    platform.postgres.stop()
    try:
        eventually(lambda: platform.upstream.stats()["streams_completed"] == 1, 20, "streamed")
        time.sleep(4)  # past DATABASE_POOL_TIMEOUT twice: storing the answer failed meanwhile
        assert platform.step(build_id) is None
    finally:
        platform.postgres.start()

    step = platform.finished_step(build_id)
    assert_kept_its_answer(platform, step)
