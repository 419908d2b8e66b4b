"""The Backups page in Chromium, as an admin uses it: no backup yet, "Back up now", the page
following the backup on a real worker until it succeeded, its log opened. An operator finds
neither the page nor its link."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from apps.accounts.models import Role
from apps.backups.models import Backup
from tests.support.browser import screenshot

pytestmark = pytest.mark.django_db(transaction=True)

PAGE = "/admin/backup-runs/"


def test_an_admin_backs_up_from_the_page(logged_in_page, backups_worker):
    page = logged_in_page(Role.ADMIN, staff=True)
    page.goto(PAGE)
    expect(page.get_by_role("heading", name="Backups")).to_be_visible()
    expect(page.locator(".backup-state")).to_contain_text("No backup yet.")
    expect(page.get_by_role("link", name="Backups")).to_be_visible()  # in the sidebar

    page.get_by_role("button", name="Back up now").click()

    backup = Backup.objects.get()
    expect(page.get_by_text(f"Backup #{backup.pk} queued")).to_be_visible()
    row = page.locator(f'tr[data-backup="{backup.pk}"]')
    expect(row).to_have_attribute("data-status", "succeeded", timeout=30_000)  # it reloads
    backup.refresh_from_db()
    expect(row).to_contain_text("On demand")
    expect(row).to_contain_text(backup.location)
    expect(page.locator(".backup-state")).to_contain_text("Last backup")
    row.get_by_text("line").click()
    expect(row.locator(".backup-log")).to_contain_text("archive stored")
    screenshot(page, "backups")


def test_an_operator_finds_no_backups(logged_in_page):
    page = logged_in_page(Role.OPERATOR, staff=True)
    page.goto("/admin/")
    expect(page.get_by_role("link", name="Backups")).to_have_count(0)
    answer = page.goto(PAGE)
    assert answer is not None and answer.status == 403
