"""The query API (``/api/v1/query``): one completion through the LLM core, in our own JSON."""

from __future__ import annotations

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from apps.accounts.models import Role
from apps.providers.llm.recording.recorder import recorder
from tests.support.factories import api_key_issue, bearer


def client(role: Role = Role.OPERATOR) -> APIClient:
    return APIClient(headers=bearer(api_key_issue(role=role)))


@pytest.mark.django_db(transaction=True)
class TestQuery:
    def test_answer_with_usage_cost_and_the_record_id(self, two_providers, recorded_calls):
        response = client().post(
            "/api/v1/query", {"prompt": "hello there friend", "model": "chat"}, format="json"
        )
        assert response.status_code == 200, response.json()
        answer = response.json()
        assert answer["content"].startswith("Hello from a") and answer["provider"] == "a"
        assert answer["usage"] == {
            "prompt_tokens": 3,
            "completion_tokens": 8,
            "total_tokens": 11,
            "estimated": False,
        }
        assert Decimal(answer["cost"]) == (3 * Decimal("1.5") + 8 * Decimal(6)) / 1_000_000
        recorder.flush()
        (call,) = recorded_calls(1)
        assert str(call.id) == answer["id"]
        assert call.entry_point == "query" and call.cost == Decimal(answer["cost"])

    def test_strategy_and_provider_per_request(self, two_providers):
        api = client()
        pinned = api.post(
            "/api/v1/query", {"prompt": "x", "model": "chat", "provider": "b"}, format="json"
        )
        assert pinned.json()["provider"] == "b"
        served = {
            api.post(
                "/api/v1/query",
                {"prompt": "x", "model": "chat", "strategy": "round-robin"},
                format="json",
            ).json()["provider"]
            for _ in range(2)
        }
        assert served == {"a", "b"}

    def test_upstream_bad_request_is_returned_not_failed_over(
        self, two_providers, upstream_a, upstream_b
    ):
        upstream_a.configure(status=400, error_message="bad things")
        response = client().post("/api/v1/query", {"prompt": "x", "model": "chat"}, format="json")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "bad_request"
        assert upstream_b.stats()["requests"] == 0

    def test_unknown_model_is_a_404(self, two_providers):
        response = client().post("/api/v1/query", {"prompt": "x", "model": "nope"}, format="json")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "model_not_found"

    def test_every_provider_down_is_a_502(self, two_providers, upstream_a, upstream_b):
        upstream_a.configure(status=500)
        upstream_b.configure(status=500)
        response = client().post("/api/v1/query", {"prompt": "x", "model": "chat"}, format="json")
        assert response.status_code == 502
        assert response.json()["error"]["code"] == "unavailable"

    @pytest.mark.parametrize(
        "payload",
        [
            {},
            {"messages": []},
            {"messages": [{"role": "king", "content": "x"}]},
            {"prompt": "x", "temperature": 5},
            {"prompt": "x", "max_tokens": 0},
            {"prompt": "x", "strategy": "fastest"},
        ],
    )
    def test_invalid_queries_are_a_400(self, payload):
        response = client().post("/api/v1/query", payload, format="json")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "validation_error"

    def test_viewers_may_not_query(self, two_providers):
        response = client(Role.VIEWER).post("/api/v1/query", {"prompt": "x"}, format="json")
        assert response.status_code == 403
