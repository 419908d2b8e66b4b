"""The artifacts API: list (filters, search, ordering), detail, download, a build's zip."""

from __future__ import annotations

import hashlib
import io
import zipfile
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import Role
from apps.artifacts.models import Artifact
from apps.artifacts.services import artifacts_store_for_step
from tests.support.factories import api_key_issue, bearer

from .conftest import agent_make, build_make, step_make

pytestmark = pytest.mark.django_db

PLAN = """\
# Plan

We need a **todo** model and a view.

File: todo/models.py
```python
class Todo:
    title = "buy milk"
```
"""

CODE = """\
# Code

```diff
--- a/todo/models.py
+++ b/todo/models.py
@@ -1,2 +1,3 @@
 class Todo:
     title = "buy milk"
+    done = False
```

```bash
python manage.py migrate
```
"""


def client(role: Role | None = Role.VIEWER) -> APIClient:
    return APIClient(headers=bearer(api_key_issue(role=role)))


@pytest.fixture
def produced() -> dict:
    """Two builds: the first with a plan (by the planner) and a code step (by the coder)."""
    planner, coder = agent_make("planner"), agent_make("coder")
    build = build_make("todo app")
    plan = step_make(build, position=1, name="plan", agent=planner)
    code = step_make(build, position=2, name="code", agent=coder)
    artifacts_store_for_step(step=plan, text=PLAN)
    artifacts_store_for_step(step=code, text=CODE)
    other = build_make("other")
    artifacts_store_for_step(step=step_make(other, name="plan"), text="# Other\n\nmilk-free.\n")
    return {
        "build": build,
        "other": other,
        "plan": plan,
        "code": code,
        "planner": planner,
        "coder": coder,
    }


def names(response) -> list[str]:
    assert response.status_code == 200, response.json()
    return [row["name"] for row in response.json()["results"]]


def test_the_list_is_paginated_newest_first(produced):
    response = client().get("/api/v1/artifacts")
    body = response.json()
    assert body["count"] == 6 and body["next"] is None
    assert names(response) == [
        "1-plan.md",
        "snippet-1.sh",
        "change-1.patch",
        "2-code.md",
        "todo/models.py",
        "1-plan.md",
    ]
    first = body["results"][-1]
    assert first["step_name"] == "plan" and first["step_position"] == 1
    assert first["agent_name"] == "planner" and first["build"] == produced["build"].pk
    assert first["download_url"] == f"/api/v1/artifacts/{first['id']}/download"
    assert "content" not in first
    page = client().get("/api/v1/artifacts", {"limit": 2, "offset": 2}).json()
    assert [row["name"] for row in page["results"]] == ["change-1.patch", "2-code.md"]


@pytest.mark.parametrize("parameter", ["kind", "type"])
def test_filter_by_kind_also_called_type(produced, parameter):
    assert names(client().get("/api/v1/artifacts", {parameter: "patch"})) == ["change-1.patch"]
    assert names(client().get("/api/v1/artifacts", {parameter: "code"})) == [
        "snippet-1.sh",
        "todo/models.py",
    ]
    wrong = client().get("/api/v1/artifacts", {parameter: "binary"})
    assert wrong.status_code == 400 and parameter in wrong.json()["error"]["details"]


def test_filter_by_build_step_agent_and_language(produced):
    api = client()
    by_build = names(api.get("/api/v1/artifacts", {"build": produced["build"].pk}))
    assert len(by_build) == 5
    assert names(api.get("/api/v1/artifacts", {"build": produced["other"].pk})) == ["1-plan.md"]
    assert names(api.get("/api/v1/artifacts", {"step": produced["plan"].pk})) == [
        "todo/models.py",
        "1-plan.md",
    ]
    assert sorted(names(api.get("/api/v1/artifacts", {"agent": produced["coder"].pk}))) == [
        "2-code.md",
        "change-1.patch",
        "snippet-1.sh",
    ]
    assert names(api.get("/api/v1/artifacts", {"language": "bash"})) == ["snippet-1.sh"]
    assert api.get("/api/v1/artifacts", {"build": 999999}).status_code == 400


def test_filter_by_created_date_range(produced):
    old = Artifact.objects.get(name="todo/models.py")
    Artifact.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=10))
    cutoff = (timezone.now() - timedelta(days=1)).isoformat()
    recent = names(client().get("/api/v1/artifacts", {"created_at_after": cutoff}))
    assert "todo/models.py" not in recent and len(recent) == 5
    assert names(client().get("/api/v1/artifacts", {"created_at_before": cutoff})) == [
        "todo/models.py"
    ]


def test_search_over_name_and_content(produced):
    api = client()
    assert sorted(names(api.get("/api/v1/artifacts", {"q": "milk"}))) == [
        "1-plan.md",
        "1-plan.md",
        "2-code.md",  # the report holds the diff
        "change-1.patch",
        "todo/models.py",
    ]
    assert names(api.get("/api/v1/artifacts", {"q": "SNIPPET"})) == ["snippet-1.sh"]  # a name
    assert names(api.get("/api/v1/artifacts", {"q": "manage.py migrate"})) == [
        "snippet-1.sh",
        "2-code.md",
    ]
    assert names(api.get("/api/v1/artifacts", {"q": "migrate", "kind": "code"})) == ["snippet-1.sh"]
    assert names(api.get("/api/v1/artifacts", {"q": "nowhere to be found"})) == []


def test_ordering(produced):
    api = client()
    by_name = names(api.get("/api/v1/artifacts", {"ordering": "name"}))
    assert by_name == sorted(by_name)
    rows = api.get("/api/v1/artifacts", {"ordering": "-size"}).json()["results"]
    assert [r["size"] for r in rows] == sorted((r["size"] for r in rows), reverse=True)
    rows = api.get("/api/v1/artifacts", {"ordering": "kind"}).json()["results"]
    kinds = [r["kind"] for r in rows]
    assert kinds == sorted(kinds)
    oldest = names(api.get("/api/v1/artifacts", {"ordering": "created_at"}))
    assert oldest == list(reversed(names(api.get("/api/v1/artifacts"))))
    assert api.get("/api/v1/artifacts", {"ordering": "checksum"}).status_code == 400


def test_detail_has_the_content(produced):
    artifact = Artifact.objects.get(name="change-1.patch")
    body = client().get(f"/api/v1/artifacts/{artifact.pk}").json()
    assert body["content"] == artifact.content and "+    done = False" in body["content"]
    assert body["kind"] == "patch" and body["language"] == "diff"
    assert body["checksum"] == hashlib.sha256(artifact.content.encode()).hexdigest()
    assert body["size"] == len(artifact.content.encode())


@pytest.mark.parametrize(
    ("name", "content_type", "filename"),
    [
        ("1-plan.md", "text/markdown; charset=utf-8", "1-plan.md"),
        ("todo/models.py", "text/x-python; charset=utf-8", "models.py"),
        ("change-1.patch", "text/x-diff; charset=utf-8", "change-1.patch"),
        ("snippet-1.sh", "text/x-shellscript; charset=utf-8", "snippet-1.sh"),
    ],
)
def test_download_is_the_file_with_its_type_as_an_attachment(
    produced, name, content_type, filename
):
    artifact = Artifact.objects.filter(name=name, build=produced["build"]).get()
    response = client().get(f"/api/v1/artifacts/{artifact.pk}/download")
    assert response.status_code == 200
    assert response["Content-Type"] == content_type
    assert response["Content-Disposition"] == f'attachment; filename="{filename}"'
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response.content == artifact.file.open("rb").read()
    assert hashlib.sha256(response.content).hexdigest() == artifact.checksum


def test_download_answers_whatever_the_client_accepts(produced):
    artifact = Artifact.objects.get(name="todo/models.py")
    response = client().get(
        f"/api/v1/artifacts/{artifact.pk}/download", headers={"Accept": "text/x-python"}
    )
    assert response.status_code == 200 and response.content.startswith(b"class Todo")
    missing = client().get("/api/v1/artifacts/999999/download", headers={"Accept": "text/plain"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_the_build_zip_holds_its_artifacts(produced):
    build = produced["build"]
    response = client().get(f"/api/v1/builds/{build.pk}/artifacts.zip")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert f'filename="build-{build.pk}-artifacts.zip"' in response["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert sorted(archive.namelist()) == [
        "step-1-plan/1-plan.md",
        "step-1-plan/todo/models.py",
        "step-2-code/2-code.md",
        "step-2-code/change-1.patch",
        "step-2-code/snippet-1.sh",
    ]
    assert archive.read("step-1-plan/1-plan.md").decode() == PLAN
    assert archive.read("step-1-plan/todo/models.py") == b'class Todo:\n    title = "buy milk"\n'


def test_not_found_answers_in_the_error_shape(produced):
    api = client()
    for path in (
        "/api/v1/artifacts/999999",
        "/api/v1/artifacts/999999/download",
        "/api/v1/builds/999999/artifacts.zip",
    ):
        response = api.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"


def test_callers_need_to_be_known_and_to_have_a_role(produced):
    artifact = Artifact.objects.first()
    assert artifact is not None
    paths = [
        "/api/v1/artifacts",
        f"/api/v1/artifacts/{artifact.pk}",
        f"/api/v1/artifacts/{artifact.pk}/download",
        f"/api/v1/builds/{produced['build'].pk}/artifacts.zip",
    ]
    no_role = client(role=None)
    for path in paths:
        anonymous = APIClient().get(path)
        assert anonymous.status_code == 401, path
        assert anonymous.json()["error"]["code"] == "not_authenticated"
        denied = no_role.get(path)
        assert denied.status_code == 403, path
        assert denied.json()["error"]["code"] == "permission_denied"
        assert client(Role.VIEWER).get(path).status_code == 200, path


def test_artifacts_cannot_be_written_through_the_api(produced):
    artifact = Artifact.objects.first()
    assert artifact is not None
    admin = client(Role.ADMIN)
    assert admin.post("/api/v1/artifacts", {"name": "x"}, format="json").status_code == 405
    assert admin.delete(f"/api/v1/artifacts/{artifact.pk}").status_code == 405
