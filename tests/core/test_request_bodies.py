"""Bodies nobody should send: nested 100,000 levels deep, or multipart that does not parse.

Each is a 400 in the one error shape carrying the request id, from the REST API (DRF), the SSE
views and the real servers (daphne parsed multipart bodies itself and answered a bare 400, or
dropped the connection, before Django saw them).
"""

from __future__ import annotations

import httpx
import pytest
from rest_framework.test import APIClient

from apps.accounts.models import Role
from apps.core.json import JsonError, loads
from tests.support.factories import api_key_issue, bearer
from tests.support.processes import AsgiServer

DEEP = b"[" * 100_000
REQUEST_ID = "bodies-test-0001"


def assert_400_in_the_error_shape(response, code: str) -> dict:
    assert response.status_code == 400, response.content[:300]
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert response.headers["X-Request-ID"] == REQUEST_ID
    return body["error"]


@pytest.mark.parametrize(
    "raw",
    [
        DEEP,
        DEEP.decode(),
        b"[" * 129 + b"]" * 129,
        b'{"a":' * 200 + b"1" + b"}" * 200,
        b"NaN",
        b"\xff",
        b'{"a": ',
    ],
)
def test_loads_turns_every_failure_into_a_json_error(raw):
    with pytest.raises(JsonError):
        loads(raw)


def test_loads_keeps_what_is_merely_nested_or_bracketed():
    assert loads(b"[" * 128 + b"]" * 128) is not None
    assert loads('{"text": "[[[[ {{{{", "list": [[1], {"a": [2]}]}')["text"] == "[[[[ {{{{"


@pytest.mark.django_db
def test_deeply_nested_json_is_a_400_from_the_rest_api():
    client = APIClient(
        headers={**bearer(api_key_issue(role=Role.VIEWER)), "X-Request-ID": REQUEST_ID}
    )
    response = client.post("/api/v1/api-keys", DEEP, content_type="application/json")
    error = assert_400_in_the_error_shape(response, "parse_error")
    assert "nested" in error["message"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["/api/streaming/chat", "/api/streaming/generate"])
def test_deeply_nested_json_is_a_400_from_the_sse_views(asgi_server: AsgiServer, path):
    key = api_key_issue(role=Role.OPERATOR)
    response = httpx.post(
        asgi_server.url + path,
        content=DEEP,
        headers={**bearer(key), "Content-Type": "application/json", "X-Request-ID": REQUEST_ID},
    )
    assert_400_in_the_error_shape(response, "parse_error")


@pytest.mark.django_db(transaction=True)
def test_deeply_nested_json_is_a_400_from_the_real_server(asgi_server: AsgiServer):
    key = api_key_issue(role=Role.VIEWER)
    response = httpx.post(
        asgi_server.url + "/api/v1/api-keys",
        content=DEEP,
        headers={**bearer(key), "Content-Type": "application/json", "X-Request-ID": REQUEST_ID},
    )
    assert_400_in_the_error_shape(response, "parse_error")


MULTIPART = "multipart/form-data; boundary=xx"
BROKEN_MULTIPART = [
    # no boundary: daphne's HTTP layer (Twisted) answered a bare "400 Bad Request"
    (b"garbage", "multipart/form-data"),
    # an RFC 2231 name Twisted's own form parsing trips on: the connection was dropped
    (
        b"--xx\r\nContent-Disposition: form-data; name*=UTF-8''%ff%fe\r\n\r\nabc\r\n--xx--",
        MULTIPART,
    ),
    # Django's parser refuses it
    (
        b'--xx\r\nContent-Disposition: form-data; name="f"; filename="a"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nabc\r\n--xx--",
        MULTIPART,
    ),
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("body, content_type", BROKEN_MULTIPART)
@pytest.mark.parametrize("path", ["/api/v1/api-keys", "/api/v1/providers"])
def test_malformed_multipart_is_a_400_in_the_error_shape(
    asgi_server: AsgiServer, path, body, content_type
):
    key = api_key_issue(role=Role.ADMIN)
    response = httpx.post(
        asgi_server.url + path,
        content=body,
        headers={**bearer(key), "Content-Type": content_type, "X-Request-ID": REQUEST_ID},
    )
    assert response.status_code == 400, response.content[:300]
    assert response.headers["X-Request-ID"] == REQUEST_ID
    assert set(response.json()["error"]) == {"code", "message", "details"}


@pytest.mark.django_db(transaction=True)
def test_well_formed_multipart_still_works(asgi_server: AsgiServer):
    key = api_key_issue(role=Role.VIEWER)
    body = b'--xx\r\nContent-Disposition: form-data; name="name"\r\n\r\nfrom-a-form\r\n--xx--\r\n'
    response = httpx.post(
        asgi_server.url + "/api/v1/api-keys",
        content=body,
        headers={**bearer(key), "Content-Type": MULTIPART},
    )
    assert response.status_code == 201 and response.json()["name"] == "from-a-form"
