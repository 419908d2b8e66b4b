"""/metrics is for allowed networks or a bearer token, decided on the one client address."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings

pytestmark = pytest.mark.django_db

OUTSIDE = "203.0.113.9"


def scrape(address: str, **headers: str):
    return Client().get("/metrics", REMOTE_ADDR=address, headers=headers)


def test_loopback_may_scrape_and_an_outside_address_may_not_even_with_a_forged_header():
    assert scrape("127.0.0.1").status_code == 200
    assert b"# TYPE" in scrape("127.0.0.1").content

    for headers in ({}, {"x_forwarded_for": "127.0.0.1"}, {"x_forwarded_for": "10.0.0.1, ::1"}):
        refused = scrape(OUTSIDE, **headers)
        assert refused.status_code == 403, headers
        assert refused.json()["error"]["code"] == "forbidden"
        assert "METRICS_TOKEN" in refused.json()["error"]["message"]


@override_settings(METRICS_TOKEN="s3cret-scrape-token")
def test_a_scraper_with_the_token_is_served_from_anywhere_and_a_wrong_token_is_not():
    assert scrape(OUTSIDE, authorization="Bearer s3cret-scrape-token").status_code == 200
    assert scrape(OUTSIDE, authorization="Bearer s3cret-scrape-tokem").status_code == 403
    assert scrape(OUTSIDE, authorization="s3cret-scrape-token").status_code == 403


@override_settings(METRICS_ALLOWED_NETWORKS=["10.8.0.0/16"], TRUSTED_PROXIES=["127.0.0.1"])
def test_allowed_networks_are_matched_on_the_client_behind_a_trusted_proxy():
    assert scrape("127.0.0.1", x_forwarded_for="10.8.3.4").status_code == 200
    assert scrape("127.0.0.1", x_forwarded_for="10.8.3.4, 203.0.113.1").status_code == 403
    assert scrape("127.0.0.1").status_code == 403, "the proxy itself is not an allowed network"


def test_the_bundled_nginx_does_not_proxy_metrics():
    from tests.support.processes import REPO_ROOT

    assert (
        "location = /metrics { return 404; }"
        in (REPO_ROOT / "nginx/templates/default.conf.template").read_text()
    )
