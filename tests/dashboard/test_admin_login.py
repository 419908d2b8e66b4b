"""A person logs in to the dashboard (the admin site) in Chromium, against the real daphne."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from apps.accounts.models import Role
from tests.dashboard.conftest import member
from tests.support.browser import PASSWORD, person_create, screenshot

pytestmark = pytest.mark.django_db(transaction=True)


def admin_person():
    user = member(Role.ADMIN, username="ada")
    user.first_name = "Ada"
    user.save(update_fields=["first_name"])
    return user


def log_in(page: Page, username: str, password: str) -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def test_the_dashboard_sends_a_person_to_log_in_and_welcomes_them(page: Page, browser_errors):
    admin_person()

    page.goto("/")
    expect(page).to_have_url(re.compile(r"/admin/login/\?next=/admin/$"))
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    screenshot(page, "login")

    log_in(page, "ada", PASSWORD)
    expect(page).to_have_url(re.compile(r"/admin/$"))
    expect(page.get_by_role("heading", name="Home", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("Account of Ada"))).to_be_visible()
    assert browser_errors.console_errors == []


def test_logging_in_at_the_login_page_itself_lands_on_home(page: Page, browser_errors):
    admin_person()

    page.goto("/admin/login/")
    log_in(page, "ada", PASSWORD)

    expect(page).to_have_url(re.compile(r"/admin/$"))
    expect(page.get_by_role("heading", name="Home", exact=True)).to_be_visible()
    assert browser_errors.console_errors == []


def test_a_wrong_password_is_refused_with_a_message(page: Page, browser_errors):
    admin_person()

    page.goto("/admin/login/")
    log_in(page, "ada", "not-" + PASSWORD)

    expect(page.get_by_text("Please enter the correct username and password")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/admin/login/$"))
    screenshot(page, "login-refused")
    assert browser_errors.console_errors == []


def test_every_role_enters_and_a_person_without_one_does_not(logged_in_page, browser_errors):
    for role in Role:
        page = logged_in_page(user=member(role))
        page.goto("/admin/")
        expect(page.get_by_role("heading", name="Home", exact=True)).to_be_visible()

    nobody = logged_in_page(user=person_create(role=None))
    nobody.goto("/admin/")
    expect(nobody).to_have_url(re.compile(r"/admin/login/\?next=/admin/$"))
    expect(nobody.get_by_text("not authorized to access this page")).to_be_visible()
    assert browser_errors.console_errors == []
