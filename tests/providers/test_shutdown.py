"""A clean shutdown loses no call record: whatever a process had gathered is shipped on exit."""

from __future__ import annotations

import signal

import openai
import pytest

from apps.providers.models import CallStatus
from tests.support.processes import AsgiServer

pytestmark = pytest.mark.django_db(transaction=True)

REQUESTS = 40


@pytest.mark.parametrize("server", ["daphne", "uvicorn"])
def test_records_gathered_before_a_clean_stop_are_kept(
    two_providers, server_env, operator_key, recorded_calls, server
):
    process = AsgiServer(server_env, name=f"{server}-stopping", server=server).start()
    client = openai.OpenAI(base_url=f"{process.url}/v1", api_key=operator_key, max_retries=0)
    try:
        for _ in range(REQUESTS):
            client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "x"}]
            )
    finally:
        # SIGTERM right after answering; uvicorn exits by the signal once shut down cleanly.
        assert process.stop() in (0, -signal.SIGTERM), process.output()[-2000:]
    calls = recorded_calls(REQUESTS)
    assert len(calls) == REQUESTS and all(c.status == CallStatus.SUCCESS for c in calls)
