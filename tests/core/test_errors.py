"""Every error of the REST API has the one shape ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from apps.accounts.models import Role
from tests.support.factories import api_key_issue, bearer, user_create

pytestmark = pytest.mark.django_db


def assert_error_shape(response, status: int, code: str) -> dict:
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


def test_401_without_credentials():
    assert_error_shape(APIClient().get("/api/v1/users"), 401, "not_authenticated")


def test_403_for_a_viewer_on_a_write():
    target = user_create()
    client = APIClient(headers=bearer(api_key_issue(role=Role.VIEWER)))
    response = client.post(f"/api/v1/users/{target.pk}/role", {"role": "admin"}, format="json")
    assert_error_shape(response, 403, "permission_denied")


def test_403_for_an_operator_on_an_admin_write():
    target = user_create()
    client = APIClient(headers=bearer(api_key_issue(role=Role.OPERATOR)))
    response = client.post(f"/api/v1/users/{target.pk}/role", {"role": "admin"}, format="json")
    assert_error_shape(response, 403, "permission_denied")


def test_admin_may_change_a_role():
    target = user_create(role=Role.VIEWER)
    client = APIClient(headers=bearer(api_key_issue(role=Role.ADMIN)))
    response = client.post(f"/api/v1/users/{target.pk}/role", {"role": "operator"}, format="json")
    assert response.status_code == 200
    assert response.json()["role"] == "operator"


def test_400_with_field_details():
    client = APIClient(headers=bearer(api_key_issue(role=Role.ADMIN)))
    response = client.post(
        f"/api/v1/users/{user_create().pk}/role", {"role": "king"}, format="json"
    )
    error = assert_error_shape(response, 400, "validation_error")
    assert "role" in error["details"]


def test_400_for_a_body_that_is_not_json():
    client = APIClient(headers=bearer(api_key_issue(role=Role.ADMIN)))
    response = client.post(
        f"/api/v1/users/{user_create().pk}/role", "{not json", content_type="application/json"
    )
    assert_error_shape(response, 400, "parse_error")


def test_404_for_a_missing_object():
    client = APIClient(headers=bearer(api_key_issue()))
    assert_error_shape(client.get("/api/v1/api-keys/999999"), 404, "not_found")


def test_404_for_an_unknown_api_path():
    assert_error_shape(Client().get("/api/v1/no-such-thing"), 404, "not_found")


def test_405_for_a_wrong_method():
    client = APIClient(headers=bearer(api_key_issue()))
    assert_error_shape(client.delete("/api/v1/me"), 405, "method_not_allowed")


def test_415_for_an_unsupported_media_type():
    client = APIClient(headers=bearer(api_key_issue()))
    response = client.post("/api/v1/api-keys", b"name=x", content_type="application/xml")
    assert_error_shape(response, 415, "unsupported_media_type")


def test_403_for_a_session_write_without_csrf():
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user_create(role=Role.ADMIN))
    response = client.post("/api/v1/api-keys", {"name": "x"}, format="json")
    assert_error_shape(response, 403, "permission_denied")


@pytest.mark.urls("tests.core.urls_failing")
def test_500_hides_the_exception_and_gives_the_request_id(caplog):
    client = Client(raise_request_exception=False)
    response = client.get("/api/v1/failing", headers={"X-Request-ID": "req-500-check"})
    error = assert_error_shape(response, 500, "server_error")
    assert "secret-internal-detail" not in response.content.decode()
    assert "Traceback" not in response.content.decode()
    assert error["details"] == {"request_id": "req-500-check"}
    assert any("secret-internal-detail" in str(r.exc_info) for r in caplog.records if r.exc_info)
