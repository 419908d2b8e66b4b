"""Django's middleware under ASGI without a thread hop per step (``apps.core.async_middleware``):
requests through the real ASGI application, in this process, counting ``sync_to_async`` calls;
sessions, messages and CSRF still work."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from asgiref.sync import SyncToAsync, async_to_sync

from apps.accounts.models import Role
from orchestra.asgi import application
from tests.support.browser import PASSWORD, person_create
from tests.support.factories import api_key_issue, bearer

pytestmark = pytest.mark.django_db(transaction=True)  # the handler closes old connections

# Django's handler sends request_started and closes the response (request_finished) in a
# thread: close_old_connections must run where the request's database connection lives.
SIGNAL_HOPS = 2


@contextmanager
def hops_counted() -> Iterator[list[str]]:
    """The function of every ``sync_to_async`` call while the block runs (Django's handler
    wraps some steps once, when it builds the chain: calls are counted, not wrappers)."""
    called: list[str] = []
    original = SyncToAsync.__call__

    async def counting(self, *args, **kwargs):
        called.append(getattr(self.func, "__qualname__", repr(self.func)))
        return await original(self, *args, **kwargs)

    SyncToAsync.__call__ = counting  # type: ignore[method-assign]
    try:
        yield called
    finally:
        SyncToAsync.__call__ = original  # type: ignore[method-assign]


class Browser:
    """An HTTP client on the ASGI application, in this process, keeping cookies. Its sync
    steps run in the test's thread (``async_to_sync``), on the test's database connection."""

    def __init__(self) -> None:
        self.cookies = httpx.Cookies()

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        return async_to_sync(self._request)(method, path, **kwargs)

    async def _request(self, method: str, path: str, **kwargs) -> httpx.Response:
        transport = httpx.ASGITransport(app=application)  # type: ignore[arg-type]
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", cookies=self.cookies
        ) as client:
            response = await client.request(method, path, **kwargs)
            self.cookies = client.cookies
        return response

    def form_token(self, path: str) -> str:
        field = re.search(
            r'name="csrfmiddlewaretoken" value="([^"]+)"', self.request("GET", path).text
        )
        assert field, f"no CSRF token in {path}"
        return field.group(1)

    def log_in(self, username: str) -> httpx.Response:
        token = self.form_token("/admin/login/")
        return self.request(
            "POST",
            "/admin/login/",
            data={"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token},
        )


def test_an_async_view_makes_no_hop_for_middleware():
    key = api_key_issue()
    browser = Browser()
    browser.request("GET", "/api/streaming/active", headers=bearer(key))  # the key now cached
    with hops_counted() as hops:
        response = browser.request("GET", "/api/streaming/active", headers=bearer(key))
    assert response.status_code == 200, response.text
    assert len(hops) <= SIGNAL_HOPS, hops
    assert not [hop for hop in hops if "Middleware" in hop]


def test_a_sync_view_makes_one_hop_for_itself():
    browser = Browser()
    browser.request("GET", "/admin/login/")
    with hops_counted() as hops:
        response = browser.request("GET", "/admin/login/")
    assert response.status_code == 200
    assert not [hop for hop in hops if "Middleware" in hop], hops
    assert len(hops) <= SIGNAL_HOPS + 2, hops  # the view, and its TemplateResponse's render


def test_logging_in_saves_the_session_the_next_request_reads():
    person_create(role=Role.ADMIN, staff=True, username="ada")
    browser = Browser()
    assert browser.request("GET", "/admin/").status_code == 302
    logged_in = browser.log_in("ada")
    assert logged_in.status_code == 302, logged_in.text
    assert "sessionid" in browser.cookies
    home = browser.request("GET", "/admin/")
    assert home.status_code == 200


def test_a_message_shows_after_the_redirect():
    person_create(role=Role.ADMIN, staff=True, username="ada")
    browser = Browser()
    browser.log_in("ada")
    token = browser.form_token("/admin/auth/group/add/")
    added = browser.request(
        "POST",
        "/admin/auth/group/add/",
        data={"name": "reviewers", "csrfmiddlewaretoken": token, "_save": "Save"},
    )
    assert added.status_code == 302, added.text
    listed = browser.request("GET", added.headers["location"])
    assert "reviewers" in listed.text and "was added successfully" in listed.text
    again = browser.request("GET", added.headers["location"])
    assert "was added successfully" not in again.text


def test_a_session_post_without_the_csrf_token_is_refused():
    person_create(role=Role.ADMIN, staff=True, username="ada")
    browser = Browser()
    browser.log_in("ada")
    refused = browser.request("POST", "/admin/auth/group/add/", data={"name": "reviewers"})
    assert refused.status_code == 403
    assert browser.request("GET", "/admin/auth/group/").text.count("reviewers") == 0
