from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import Client

from apps.accounts.models import Role
from apps.github.services import github_settings_update
from tests.dashboard.conftest import member
from tests.fake_github.server import FakeGitHub

TOKEN = "ghp_fakeGitHubToken0123456789abcdefSECRET"


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
