"""The artifacts' admin: read only, filtered, searched, previewed, downloadable."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.accounts.models import Role
from apps.artifacts.models import Artifact
from apps.artifacts.services import artifacts_store_for_step
from tests.support.factories import user_create

from .conftest import agent_make, build_make, step_make

pytestmark = pytest.mark.django_db

OUTPUT = """\
# Review <script>alert('report')</script>

File: app/models.py
```python
class Todo:  # <script>alert('code')</script>
    pass
```
"""


@pytest.fixture
def artifacts() -> list[Artifact]:
    step = step_make(build_make(), name="review", agent=agent_make("reviewer"))
    stored = artifacts_store_for_step(step=step, text=OUTPUT)
    other = step_make(build_make(), name="plan")
    artifacts_store_for_step(step=other, text="# Elsewhere\n")
    return stored


def test_the_list_filters_and_searches(admin_client, artifacts):
    report, code = artifacts
    page = admin_client.get("/admin/artifacts/artifact/").content.decode()
    assert "app/models.py" in page and "1-review.md" in page and "1-plan.md" in page
    assert f"/api/v1/artifacts/{code.pk}/download" in page

    by_kind = admin_client.get("/admin/artifacts/artifact/", {"kind": "code"}).content.decode()
    assert "app/models.py" in by_kind and "1-plan.md" not in by_kind
    by_build = admin_client.get(
        "/admin/artifacts/artifact/", {"build_id": str(report.build_id)}
    ).content.decode()
    assert "1-review.md" in by_build and "1-plan.md" not in by_build
    by_agent = admin_client.get(
        "/admin/artifacts/artifact/", {"agent__id__exact": str(report.agent_id)}
    ).content.decode()
    assert "1-review.md" in by_agent and "1-plan.md" not in by_agent
    searched = admin_client.get("/admin/artifacts/artifact/", {"q": "class Todo"}).content.decode()
    assert "app/models.py" in searched and "1-plan.md" not in searched


def test_the_change_page_previews_safely_and_offers_no_edit(admin_client, artifacts):
    report, code = artifacts
    page = admin_client.get(f"/admin/artifacts/artifact/{report.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'class="artifact-preview"' in html and "<h1>Review </h1>" in html
    assert "alert('report')" not in html
    assert ".highlight .k" in html  # the stylesheet
    assert 'name="_save"' not in html

    code_page = admin_client.get(f"/admin/artifacts/artifact/{code.pk}/change/").content.decode()
    assert '<span class="k">class</span>' in code_page
    assert "&lt;script&gt;alert('code')&lt;/script&gt;" in code_page
    assert "<script>alert('code')" not in code_page


def test_artifacts_cannot_be_added_changed_or_deleted(admin_client, artifacts):
    report, _ = artifacts
    assert admin_client.get("/admin/artifacts/artifact/add/").status_code == 403
    admin_client.post(f"/admin/artifacts/artifact/{report.pk}/change/", {"name": "renamed"})
    report.refresh_from_db()
    assert report.name == "1-review.md"
    assert admin_client.post(f"/admin/artifacts/artifact/{report.pk}/delete/").status_code == 403
    assert Artifact.objects.filter(pk=report.pk).exists()


def test_the_sidebar_lists_artifacts_for_viewers(artifacts):
    viewer = Client()
    viewer.force_login(user_create(role=Role.VIEWER))
    page = viewer.get("/admin/").content.decode()
    assert "/admin/artifacts/artifact/" in page
    assert viewer.get("/admin/artifacts/artifact/").status_code == 200
