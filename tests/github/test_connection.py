"""The connection's state in /health and the feature status, and its bootstrap from the
environment (each value once: an admin's edit stands until the variable changes)."""

from __future__ import annotations

import io

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.test import Client

from apps.accounts.models import Role
from apps.core.health import health_checks
from apps.github.models import GitHubSettings
from apps.github.selectors import github_connection
from apps.github.services import github_bootstrap_from_env, github_settings_update
from tests.github.conftest import TOKEN, signed_in

pytestmark = pytest.mark.django_db(transaction=True)


def _github_status() -> str:
    health_checks_cache_clear()
    return Client().get("/health").json()["services"]["github"]


def health_checks_cache_clear() -> None:
    from apps.core import health

    health._cached.clear()


def _feature() -> bool:
    return signed_in(Role.VIEWER).get("/api/v1/feature-status").json()["available"]["github"]


def test_health_says_disabled_ok_or_error(fake_github):
    assert "github" in health_checks
    assert _github_status() == "disabled"
    assert _feature() is False
    github_settings_update(enabled=True, token=TOKEN, api_url=fake_github.url)
    assert _github_status() == "ok"
    assert _feature() is True
    github_settings_update(token="not-the-token")
    assert _github_status() == "error"


def test_the_environment_bootstraps_the_settings_once(fake_github):
    environ = {"GITHUB_ENABLED": "true", "GITHUB_TOKEN": TOKEN, "GITHUB_OWNER": "acme",
               "GITHUB_REPO": "widgets"}  # fmt: skip
    lines = github_bootstrap_from_env(environ=environ)
    assert lines == ["github: enabled set, token set, owner set, repo set"]
    row = GitHubSettings.objects.get()
    assert (row.enabled, row.owner, row.repo) == (True, "acme", "widgets")
    assert github_connection().token == TOKEN
    # an admin's edit stands while the environment says the same
    github_settings_update(repo="gadgets")
    assert github_bootstrap_from_env(environ=environ) == ["github: unchanged"]
    assert GitHubSettings.objects.get().repo == "gadgets"
    # a changed variable is applied
    assert github_bootstrap_from_env(environ={**environ, "GITHUB_REPO": "gears"}) == [
        "github: repo set"
    ]
    assert GitHubSettings.objects.get().repo == "gears"


def test_a_bad_value_names_its_variable_and_writes_nothing():
    with pytest.raises(ValidationError, match="GITHUB_ENABLED"):
        github_bootstrap_from_env(environ={"GITHUB_ENABLED": "maybe", "GITHUB_OWNER": "acme"})
    assert not GitHubSettings.objects.exists()


def test_the_command_never_prints_the_token(settings):
    settings.GITHUB_TOKEN = TOKEN
    out = io.StringIO()
    call_command("bootstrap_github", stdout=out)
    assert "token set" in out.getvalue() and TOKEN not in out.getvalue()
