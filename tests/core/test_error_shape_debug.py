"""With DEBUG on, the API still answers its JSON errors, never Django's technical pages."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest
from django.test import Client, override_settings

from apps.accounts.api.views import MeApi
from apps.accounts.models import Role
from tests.core.test_errors import assert_error_shape
from tests.support.factories import user_create
from tests.support.processes import AsgiServer

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.core.urls_failing")]


def debug_client() -> Client:
    """A client whose handler loads the middleware with DEBUG on (it is built per client)."""
    return Client(raise_request_exception=False)


@override_settings(DEBUG=True)
def test_500_in_an_api_view_is_json_with_the_request_id(caplog):
    response = debug_client().get("/api/v1/failing", headers={"X-Request-ID": "req-debug-500"})
    error = assert_error_shape(response, 500, "server_error")
    body = response.content.decode()
    assert "secret-internal-detail" not in body and "Traceback" not in body
    assert "REDIS_URL" not in body
    assert error["details"] == {"request_id": "req-debug-500"}
    assert response["X-Request-ID"] == "req-debug-500"
    assert any("secret-internal-detail" in str(r.exc_info) for r in caplog.records if r.exc_info)


@override_settings(DEBUG=True)
def test_500_in_an_api_view_is_json_for_a_browser_too():
    response = debug_client().get("/api/v1/failing", headers={"Accept": "text/html"})
    assert_error_shape(response, 500, "server_error")


@override_settings(DEBUG=True)
def test_500_in_a_drf_view_is_json(monkeypatch):
    def explode(self, request, *args, **kwargs):
        raise RuntimeError("secret-drf-detail")

    monkeypatch.setattr(MeApi, "get", explode)
    client = debug_client()
    client.force_login(user_create(role=Role.ADMIN))
    response = client.get("/api/v1/me")
    assert_error_shape(response, 500, "server_error")
    assert "secret-drf-detail" not in response.content.decode()


@override_settings(DEBUG=True)
@pytest.mark.parametrize("path", ["/api/v1/no-such-thing", "/api/nothing/here", "/ws/nope"])
def test_unknown_api_url_is_a_json_404(path):
    response = debug_client().get(path, headers={"Accept": "text/html"})
    error = assert_error_shape(response, 404, "not_found")
    assert path in error["message"]
    assert "URLconf" not in response.content.decode()


@override_settings(DEBUG=True)
def test_an_api_path_missing_its_slash_is_still_redirected():
    assert debug_client().get("/api/docs").status_code == 301


@override_settings(DEBUG=True)
def test_pages_outside_the_api_keep_the_debug_page():
    response = debug_client().get("/no-such-page", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    assert "URLconf" in response.content.decode()


def test_without_debug_there_is_no_debug_page_outside_the_api():
    response = Client().get("/no-such-page", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert "URLconf" not in response.content.decode()


@pytest.fixture
def debug_server(redis_server, tmp_path) -> Iterator[AsgiServer]:
    """daphne as ``DEBUG=1 make run`` serves, with a database that cannot be opened."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "orchestra.settings.development",
        "DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path}/missing-dir/db.sqlite3",
        "REDIS_URL": redis_server,
        "PYTHONUNBUFFERED": "1",
    }
    server = AsgiServer(env, name="daphne-debug").start()
    yield server
    server.stop()


@pytest.mark.slow
def test_a_real_debug_server_answers_json_errors_under_the_api(debug_server):
    page = httpx.get(f"{debug_server.url}/no-such-page", headers={"Accept": "text/html"})
    assert page.status_code == 404 and "URLconf" in page.text  # DEBUG is on in that process

    unknown = httpx.get(f"{debug_server.url}/api/v1/no-such-thing", headers={"Accept": "text/html"})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "not_found"

    # The key lookup fails in the view: the database cannot be opened, which a retry may outlive.
    failing = httpx.get(
        f"{debug_server.url}/api/v1/me",
        headers={"Authorization": "Bearer ao_abcdefgh_secret", "X-Request-ID": "req-real-503"},
    )
    assert failing.status_code == 503
    assert failing.headers["Retry-After"] == "2"
    assert failing.json() == {
        "error": {
            "code": "database_unavailable",
            "message": "The database is unavailable; retry shortly.",
            "details": {"request_id": "req-real-503", "retry_after": 2},
        }
    }
    assert "the database is unavailable" in debug_server.output()  # logged, not shown
    assert "Traceback" not in failing.text
