"""The platform's runtime settings (the log level): the API, the admin, and what a change does in
the process that makes it, with Redis and without. Another process taking it up is shown in
``tests/dashboard/test_config_page.py``."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest
import redis
from django.test import Client
from rest_framework.test import APIClient

from apps.accounts.models import Role
from apps.core import platform_settings
from apps.core.models import PlatformSettings
from apps.core.platform_settings import changes_channel, started_log_level, version_key
from apps.core.redis import redis_client
from apps.core.services import platform_settings_update
from tests.support.factories import api_key_issue, bearer, user_create

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def level_restored() -> Iterator[None]:
    """Back to the started level here and in every process that follows the settings (a
    server of the session, which would otherwise log only errors for the tests after these)."""
    yield
    platform_settings_update(log_level="")
    platform_settings.log_level_apply("")


def api(role: Role) -> APIClient:
    return APIClient(headers=bearer(api_key_issue(role=role)))


def test_an_operator_changes_the_log_level_through_the_api_and_it_applies_at_once():
    started = logging.getLogger().level
    before = int(redis_client().get(version_key()) or 0)
    assert api(Role.VIEWER).get("/api/v1/platform-settings").json()["log_level"] == ""

    response = api(Role.OPERATOR).patch(
        "/api/v1/platform-settings", {"log_level": "DEBUG"}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["log_level"] == "DEBUG"
    assert logging.getLogger().level == logging.DEBUG
    assert logging.getLogger("django").level == logging.DEBUG
    assert int(redis_client().get(version_key()) or 0) == before + 1  # the others are told

    response = api(Role.OPERATOR).patch(
        "/api/v1/platform-settings", {"log_level": ""}, format="json"
    )
    assert response.json()["log_level"] == ""
    assert logging.getLogger().level == started == started_log_level()


def test_a_viewer_may_not_change_it_and_a_bad_level_is_a_400():
    refused = api(Role.VIEWER).patch(
        "/api/v1/platform-settings", {"log_level": "DEBUG"}, format="json"
    )
    assert refused.status_code == 403
    bad = api(Role.OPERATOR).patch(
        "/api/v1/platform-settings", {"log_level": "LOUD"}, format="json"
    )
    assert bad.status_code == 400
    assert not PlatformSettings.objects.exclude(log_level="").exists()


def test_without_redis_the_change_still_applies_in_this_process(monkeypatch, caplog):
    class Down:
        def register_script(self, script):
            def run(**kwargs):
                raise redis.ConnectionError("Connection refused")

            return run

    monkeypatch.setattr(platform_settings, "redis_client", lambda: Down())
    platform_settings_update(log_level="WARNING")
    assert logging.getLogger().level == logging.WARNING
    assert PlatformSettings.objects.get().log_level == "WARNING"
    assert "could not announce the platform settings" in caplog.text


def test_the_follower_applies_a_change_announced_by_another_process():
    """What each process's thread does, here: a row saved elsewhere, a bump on the channel."""
    follower = platform_settings.SettingsFollower()
    applied = threading.Event()
    catch_up = follower.catch_up

    def noting(client):
        catch_up(client)
        if logging.getLogger().level == logging.ERROR:
            applied.set()

    follower.catch_up = noting
    follower.start()
    try:
        PlatformSettings.objects.create(log_level="ERROR")  # not through the service: no apply
        assert logging.getLogger().level != logging.ERROR
        client = redis_client()
        client.publish(changes_channel(), client.incr(version_key()))
        assert applied.wait(10)
    finally:
        follower.stopped.set()
        client.publish(changes_channel(), "0")  # wakes it up to see it must stop
        follower.join(10)


def test_the_admin_saves_through_the_service():
    admin = user_create(role=Role.ADMIN)
    client = Client()
    client.force_login(admin)
    response = client.post("/admin/core/platformsettings/add/", {"log_level": "ERROR"})
    assert response.status_code == 302
    assert PlatformSettings.objects.get().log_level == "ERROR"
    assert logging.getLogger().level == logging.ERROR
