"""Login throttling (django-axes) on /admin/login/: wrong passwords lock a username out for
the address they came from, by the platform's one client address (``TRUSTED_PROXIES``)."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings

from apps.accounts.models import Role
from apps.accounts.services import api_key_create
from tests.dashboard.conftest import member
from tests.support.browser import PASSWORD
from tests.support.factories import bearer

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/"
LIMIT = 5  # AXES_FAILURE_LIMIT's default
ATTACKER, ELSEWHERE = "203.0.113.5", "198.51.100.20"


def log_in(client: Client, username: str, password: str, address: str, **headers: str):
    return client.post(
        LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address, headers=headers
    )


def fail_until_locked(username: str, address: str, **headers: str) -> list[int]:
    return [
        log_in(Client(), username, "wrong-" + PASSWORD, address, **headers).status_code
        for _ in range(LIMIT)
    ]


def test_wrong_passwords_lock_the_account_for_that_address_with_a_clear_message():
    member(Role.ADMIN, username="ada")

    assert fail_until_locked("ada", ATTACKER) == [200] * (LIMIT - 1) + [429]
    refused = log_in(Client(), "ada", PASSWORD, ATTACKER)

    assert refused.status_code == 429
    text = refused.content.decode()
    assert "Too many failed logins" in text and "ada" in text and "0:15:00" in text
    assert "_auth_user_id" not in refused.client.session
    # The same person elsewhere is not locked out.
    elsewhere = log_in(Client(), "ada", PASSWORD, ELSEWHERE)
    assert elsewhere.status_code == 302 and elsewhere["Location"] == "/admin/"


def test_a_written_x_forwarded_for_neither_resets_nor_dodges_the_lockout():
    member(Role.ADMIN, username="ada")
    fail_until_locked("ada", ATTACKER)

    for forwarded in ("198.51.100.7", f"198.51.100.7, {ELSEWHERE}"):
        spoofed = log_in(Client(), "ada", PASSWORD, ATTACKER, x_forwarded_for=forwarded)
        assert spoofed.status_code == 429, forwarded


@override_settings(TRUSTED_PROXIES=["127.0.0.1"])
def test_behind_a_trusted_proxy_the_forwarded_client_is_locked_out():
    member(Role.ADMIN, username="ada")
    proxy = "127.0.0.1"
    assert fail_until_locked("ada", proxy, x_forwarded_for=ATTACKER)[-1] == 429

    # What the client writes left of what the proxy added changes nothing.
    rewritten = f"{ELSEWHERE}, {ATTACKER}"
    assert log_in(Client(), "ada", PASSWORD, proxy, x_forwarded_for=rewritten).status_code == 429
    # Another client behind the same proxy logs in.
    other = log_in(Client(), "ada", PASSWORD, proxy, x_forwarded_for=ELSEWHERE)
    assert other.status_code == 302


def test_api_keys_go_on_working_from_a_locked_out_address():
    user = member(Role.OPERATOR, username="otto")
    _, raw = api_key_create(user=user, name="ci")
    fail_until_locked("otto", ATTACKER)

    me = Client().get("/api/v1/me", REMOTE_ADDR=ATTACKER, headers=bearer(raw))

    assert me.status_code == 200 and me.json()["username"] == "otto"


def test_admins_see_lockouts_and_clear_them_and_no_one_else_sees_them():
    member(Role.ADMIN, username="ada")
    fail_until_locked("ada", ATTACKER)
    admin_client, viewer_client = Client(), Client()
    admin_client.force_login(member(Role.ADMIN, username="root"))
    viewer_client.force_login(member(Role.VIEWER, username="vera"))
    url = "/admin/axes/accessattempt/"

    listed = admin_client.get(url)
    assert listed.status_code == 200
    assert ATTACKER in listed.content.decode() and "ada" in listed.content.decode()
    assert "Login lockouts" in admin_client.get("/admin/").content.decode()
    assert viewer_client.get(url).status_code == 403
    assert "Login lockouts" not in viewer_client.get("/admin/").content.decode()

    from axes.models import AccessAttempt

    attempt = AccessAttempt.objects.get(username="ada")
    assert "wrong-" not in attempt.post_data, "the password is masked"
    deleted = admin_client.post(
        f"{url}{attempt.pk}/delete/", {"post": "yes"}, REMOTE_ADDR="192.0.2.1"
    )
    assert deleted.status_code == 302
    assert log_in(Client(), "ada", PASSWORD, ATTACKER).status_code == 302
