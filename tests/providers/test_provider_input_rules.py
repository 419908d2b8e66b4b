"""What a provider may be told to send is checked when it is saved (API and admin share the
model's rules): extra headers must be valid single-line HTTP headers, and a base URL may not carry
credentials. A CR/LF in a header used to be saved, and then every ``/v1`` call through that
provider failed with a 500."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.accounts.models import Role
from apps.providers.models import Provider
from tests.support.factories import api_key_issue, bearer


def client(role: Role = Role.OPERATOR) -> APIClient:
    return APIClient(headers=bearer(api_key_issue(role=role)))


@pytest.mark.django_db
class TestExtraHeadersAndUrls:
    @pytest.mark.parametrize(
        "headers",
        [
            {"X-A": "a\r\nInjected: yes"},
            {"X-A": "a\nb"},
            {"X-A": "a\rb"},
            {"X-A": "a\x00b"},
            {"X A": "v"},
            {"X-A:": "v"},
            {"": "v"},
            {"X-A\n": "v"},
            {"Host": "evil.example"},
            {"content-length": "0"},
            {"X-" + "a" * 64: "v"},
            {"X-A": "v" * 4097},
            {f"X-{i}": "v" for i in range(21)},
            {"X-A": 5},
            ["X-A"],
        ],
    )
    def test_bad_headers_are_refused(self, headers):
        response = client().post(
            "/api/v1/providers",
            {"name": "h", "kind": "openai", "extra_headers": headers},
            format="json",
        )
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "validation_error"
        details = response.json()["error"]["details"]
        assert any(field.startswith("extra_headers") for field in details), details
        assert not Provider.objects.exists()

    def test_good_headers_are_taken(self):
        headers = {"X-Api-Version": "2024-01\tbeta", "OpenAI-Organization": "org-1"}
        response = client().post(
            "/api/v1/providers",
            {"name": "h", "kind": "openai", "extra_headers": headers},
            format="json",
        )
        assert response.status_code == 201, response.json()
        assert Provider.objects.get().extra_headers == headers

    @pytest.mark.parametrize(
        "url", ["https://user:pass@api.example/v1", "https://token@api.example/v1"]
    )
    def test_credentials_in_the_base_url_are_refused(self, url):
        response = client().post("/api/v1/providers", {"name": "u", "base_url": url}, format="json")
        assert response.status_code == 400
        (message,) = response.json()["error"]["details"]["base_url"]
        assert "api_key" in message
        assert not Provider.objects.exists()
