from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import Client

from apps.accounts.models import Role
from apps.github.services import github_settings_update
from tests.dashboard.conftest import member
from tests.fake_github.server import FakeGitHub

TOKEN = "ghp_fakeGitHubToken0123456789abcdefSECRET"
REPO = "acme/gears"
URLS = "from django.urls import path\n\nurlpatterns = [\n]\n"
VIEWS = "def home(request):\n    return None\n"
FILES = {"app/urls.py": URLS, "app/views.py": VIEWS, "README.md": "# Gears\n"}


@pytest.fixture
def fake_github() -> Iterator[FakeGitHub]:
    server = FakeGitHub(TOKEN).start()
    server.add_repo("acme", "widgets", branches=("main", "feature"))
    yield server
    server.stop()


@pytest.fixture
def connected(fake_github: FakeGitHub) -> FakeGitHub:
    github_settings_update(
        enabled=True, token=TOKEN, owner="acme", repo="widgets", api_url=fake_github.url
    )
    return fake_github


def signed_in(role: Role) -> Client:
    client = Client()
    client.force_login(member(role))
    return client


@pytest.fixture
def gears(connected: FakeGitHub) -> FakeGitHub:
    """A repository with files, and its issue #1 with a comment: what builds work on."""
    connected.add_repo("acme", "gears", files=FILES)
    connected.add_issue(
        REPO, "The home page has no route", "Opening / answers 404.",
        comments=("It should be `home` in app/views.py.",),
    )  # fmt: skip
    return connected


@pytest.fixture
def issues(gears: FakeGitHub) -> FakeGitHub:
    """The default repository is acme/gears: its issue #1 and a second one."""
    github_settings_update(owner="acme", repo="gears")
    gears.add_issue(REPO, "The about page is blank", "Nothing renders on /about.")
    return gears
