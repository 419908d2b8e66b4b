"""Metrics add up across processes (prometheus_client multiprocess mode)."""

from __future__ import annotations

import re

import httpx
import openai
import pytest

from tests.support.processes import AsgiServer

pytestmark = pytest.mark.django_db(transaction=True)


def sample(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        match = re.match(rf"{name}{{(.*)}} (\S+)$", line)
        if match and ",".join(sorted(match.group(1).split(","))) == wanted:
            return float(match.group(2))
    return 0.0


def test_counts_are_summed_over_web_processes(two_providers, server_env, operator_key, tmp_path):
    env = {**server_env, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    servers = [AsgiServer(env, name=f"daphne-metrics-{i}").start() for i in range(2)]
    try:
        for server, requests in zip(servers, (3, 2), strict=True):
            client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=operator_key, max_retries=0)
            for _ in range(requests):
                client.chat.completions.create(
                    model="chat", messages=[{"role": "user", "content": "x"}]
                )
        text = httpx.get(f"{servers[0].url}/metrics").text
    finally:
        for server in servers:
            server.stop()
    labels = {"provider": "a", "model": "fake-model", "status": "success"}
    assert sample(text, "ai_orchestra_llm_queries_total", **labels) == 5
    assert (
        sample(
            text,
            "ai_orchestra_llm_tokens_total",
            provider="a",
            model="fake-model",
            direction="output",
        )
        == 40
    )
    assert "ai_orchestra_llm_query_duration_seconds_bucket" in text


def test_a_failed_query_counts_against_the_provider_and_model_it_failed_on(
    two_providers, upstream_a, upstream_b, server_env, operator_key, tmp_path
):
    upstream_a.configure(status=500)
    upstream_b.configure(status=503)
    env = {**server_env, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    server = AsgiServer(env, name="daphne-metrics-failed").start()
    try:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=operator_key, max_retries=0)
        with pytest.raises(openai.APIStatusError):
            client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "x"}]
            )
        text = httpx.get(f"{server.url}/metrics").text
    finally:
        server.stop()
    # a was tried first, then b: the call failed on b, as its record says.
    failed = {"model": "fake-model", "status": "error"}
    assert sample(text, "ai_orchestra_llm_queries_total", provider="b", **failed) == 1
    assert sample(text, "ai_orchestra_llm_queries_total", provider="a", **failed) == 0
    assert 'provider="none"' not in text
    attempts = sample(
        text, "ai_orchestra_llm_attempt_failures_total", provider="a", error="unavailable"
    )
    assert attempts >= 1
