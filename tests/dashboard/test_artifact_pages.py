"""The Artifact browser in Chromium, against a real daphne: filters, previews (Markdown rendered
and sanitised, code highlighted, a patch as a diff) and downloads, one file and a build's zip."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from apps.accounts.models import Role
from apps.artifacts.models import Artifact
from apps.artifacts.services import archive_member_names
from tests.dashboard.build_data import finished_build
from tests.dashboard.conftest import member
from tests.support.browser import screenshot

pytestmark = pytest.mark.django_db(transaction=True)


def rows(page: Page):
    return page.locator(".artifact-table tbody tr")


def test_browse_preview_and_download(logged_in_page, browser_errors):
    build = finished_build(title="Widgets")
    finished_build(title="Gadgets")
    page: Page = logged_in_page(user=member(Role.VIEWER))
    page.goto("/admin/artifact-browser/")
    expect(rows(page)).to_have_count(10)
    expect(page.locator("#artifact-count")).to_have_text("10 artifacts")
    expect(rows(page).first.locator(".artifact-icon")).to_have_attribute("aria-hidden", "true")
    screenshot(page, "artifact-browser-two-builds")

    page.get_by_label("Type").select_option("code")
    page.get_by_label("Build #").fill(str(build.pk))
    page.get_by_role("button", name="Apply").click()
    expect(rows(page)).to_have_count(1)
    expect(page.locator("#artifact-count")).to_have_text("1 artifact matches")
    expect(page.get_by_label("Type")).to_have_value("code")  # the filters stay as set
    code = Artifact.objects.get(build=build, kind="code")

    page.get_by_role("link", name="app/models.py", exact=True).click()
    expect(page).to_have_url(f"/admin/artifact-browser/{code.pk}/")
    preview = page.locator("#artifact-preview")
    keyword = preview.locator(".highlight .k").first
    expect(keyword).to_have_text("class")
    assert keyword.evaluate("el => getComputedStyle(el).color") == "rgb(0, 128, 0)"
    screenshot(page, "artifact-code")

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download", exact=True).click()
    download = download_info.value
    assert download.suggested_filename == "models.py"
    assert Path(download.path()).read_bytes() == code.content.encode()

    with page.expect_download() as download_info:
        page.get_by_role("link", name=f"All of build #{build.pk} (zip)").click()
    download = download_info.value
    assert download.suggested_filename == f"build-{build.pk}-artifacts.zip"
    artifacts = list(build.artifacts.select_related("step").order_by("step__position", "id"))
    with zipfile.ZipFile(io.BytesIO(Path(download.path()).read_bytes())) as archive:
        assert archive.namelist() == archive_member_names(artifacts)
        assert archive.read("step-2-implement/app/models.py") == code.content.encode()

    # A report: Markdown rendered, its HTML sanitised (the script never ran).
    page.get_by_role("link", name="All artifacts").click()
    page.get_by_role("searchbox", name="Search").fill("cog")
    page.get_by_label("Build #").fill(str(build.pk))
    page.get_by_label("Sort").select_option("name")
    page.get_by_role("button", name="Apply").click()
    expect(rows(page).locator("td[data-label=Artifact] a")).to_have_text(
        ["3-review.md", "change-1.patch"]
    )
    page.get_by_role("link", name="3-review.md", exact=True).click()
    expect(page.locator("#artifact-preview strong")).to_have_text("good")
    expect(page.locator("#artifact-preview script")).to_have_count(0)
    assert page.evaluate("window.pwned") is None
    page.go_back()
    page.get_by_role("link", name="change-1.patch", exact=True).click()
    expect(page.locator("#artifact-preview .artifact-diff .diff-add")).to_have_text(
        "+    name = 'cog'"
    )
    expect(page.locator("#artifact-preview .artifact-diff .diff-del")).to_have_text(
        "-    name = 'gear'"
    )
    screenshot(page, "artifact-patch")
    assert browser_errors.console_errors == []
