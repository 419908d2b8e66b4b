"""Storing a step's artifacts (once), and a build's archive."""

from __future__ import annotations

import hashlib
import io
import threading
import zipfile

import pytest
from django.core.files.storage import default_storage
from django.db import connection, transaction

from apps.artifacts.models import Artifact
from apps.artifacts.services import (
    artifact_archive,
    artifacts_store_for_step,
    step_report_name,
)

from .conftest import agent_make, build_make, step_make, stored_files

OUTPUT = """\
# Plan

File: app/models.py
```python
class Todo:
    title = "caf\u00e9 \u2615"
```

```diff
--- a/app/models.py
+++ b/app/models.py
@@ -1,2 +1,3 @@
 class Todo:
     title = "x"
+    done = False
```
"""


@pytest.mark.django_db
def test_a_step_output_is_stored_as_files_with_size_and_checksum(media_root):
    agent = agent_make()
    build = build_make()
    step = step_make(build, position=2, name="write code", agent=agent)

    with transaction.atomic():
        artifacts = artifacts_store_for_step(step=step, text=OUTPUT)

    assert [(a.name, a.kind) for a in artifacts] == [
        ("2-write_code.md", "report"),
        ("app/models.py", "code"),
        ("change-1.patch", "patch"),
    ]
    assert Artifact.objects.count() == 3
    for artifact in Artifact.objects.all():
        data = (media_root / artifact.file.name).read_bytes()
        assert data == artifact.content.encode("utf-8")
        assert artifact.size == len(data)
        assert artifact.checksum == hashlib.sha256(data).hexdigest()
        assert (artifact.build_id, artifact.step_id, artifact.agent_id) == (
            build.pk,
            step.pk,
            agent.pk,
        )
        assert artifact.file.name.startswith(f"artifacts/build-{build.pk}/step-{step.pk}/")
    code = Artifact.objects.get(kind="code")
    assert code.size > len(code.content)  # UTF-8 bytes, not characters
    assert code.file.name == f"artifacts/build-{build.pk}/step-{step.pk}/app/models.py"
    report = Artifact.objects.get(kind="report")
    assert report.content == OUTPUT and report.content_type == "text/markdown"
    assert len(stored_files(media_root)) == 3


@pytest.mark.django_db
def test_storing_twice_writes_nothing_new(media_root):
    step = step_make(build_make())
    first = artifacts_store_for_step(step=step, text=OUTPUT)
    files = {path: path.stat().st_mtime_ns for path in stored_files(media_root)}

    again = artifacts_store_for_step(step=step, text=OUTPUT + "\nA different output.\n")

    assert [a.pk for a in again] == [a.pk for a in first]
    assert Artifact.objects.count() == 3
    assert {path: path.stat().st_mtime_ns for path in stored_files(media_root)} == files
    assert "A different output" not in Artifact.objects.get(kind="report").content


@pytest.mark.django_db(transaction=True)
def test_two_deliveries_at_once_store_the_artifacts_once(media_root):
    """Two workers finishing the same step together: the second waits on the step's row and
    finds the first one's artifacts."""
    step = step_make(build_make())
    barrier = threading.Barrier(2)
    results: list[list[int]] = []
    errors: list[BaseException] = []

    def deliver() -> None:
        try:
            barrier.wait(5)
            with transaction.atomic():
                stored = artifacts_store_for_step(step=step, text=OUTPUT)
            results.append(sorted(a.pk for a in stored))
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert len(results) == 2 and results[0] == results[1]
    assert Artifact.objects.count() == 3
    assert len(stored_files(media_root)) == 3


@pytest.mark.django_db
def test_a_failed_write_leaves_no_files_behind(media_root):
    """The code file cannot be written (a file stands where its folder must be): the report
    written before it is removed again, and nothing is recorded."""
    step = step_make(build_make())
    folder = media_root / f"artifacts/build-{step.build_id}/step-{step.pk}"
    folder.mkdir(parents=True)
    (folder / "app").write_text("in the way")

    with pytest.raises(OSError):
        artifacts_store_for_step(step=step, text=OUTPUT)

    assert stored_files(media_root) == [folder / "app"]
    assert not Artifact.objects.filter(step=step).exists()


@pytest.mark.django_db
def test_the_report_name_is_the_step_made_safe():
    build = build_make()
    assert step_report_name(step=step_make(build, position=3, name="review/fix")) == (
        "3-review-fix.md"
    )
    assert step_report_name(step=step_make(build, position=4, name="../../x")) == "4-..-..-x.md"


@pytest.mark.django_db
def test_the_archive_holds_every_artifact_of_the_build_by_step(media_root):
    build = build_make()
    plan = step_make(build, position=1, name="plan")
    code = step_make(build, position=2, name="code")
    artifacts_store_for_step(step=plan, text="# Plan\n\nFile: notes.md\n```markdown\nhi\n```\n")
    artifacts_store_for_step(step=code, text=OUTPUT)
    other = step_make(build_make(), position=1, name="plan")
    artifacts_store_for_step(step=other, text="not in this build")

    archive = zipfile.ZipFile(io.BytesIO(artifact_archive(build=build)))

    assert archive.testzip() is None
    assert sorted(archive.namelist()) == [
        "step-1-plan/1-plan.md",
        "step-1-plan/notes.md",
        "step-2-code/2-code.md",
        "step-2-code/app/models.py",
        "step-2-code/change-1.patch",
    ]
    for artifact in Artifact.objects.filter(build=build).select_related("step"):
        step = artifact.step
        assert step is not None
        member = f"step-{step.position}-{step.name}/{artifact.name}"
        data = archive.read(member)
        assert hashlib.sha256(data).hexdigest() == artifact.checksum


@pytest.mark.django_db
def test_the_archive_serves_a_lost_file_from_its_text(media_root):
    build = build_make()
    (report,) = artifacts_store_for_step(step=step_make(build), text="# only a report\n")
    default_storage.delete(report.file.name)

    archive = zipfile.ZipFile(io.BytesIO(artifact_archive(build=build)))

    assert archive.read("step-1-plan/1-plan.md") == b"# only a report\n"


@pytest.mark.django_db
def test_an_empty_build_is_an_empty_zip():
    archive = zipfile.ZipFile(io.BytesIO(artifact_archive(build=build_make())))
    assert archive.namelist() == []


@pytest.mark.django_db
def test_archive_paths_are_safe_even_for_rows_written_elsewhere(media_root):
    """A row not made by the extraction (a hostile name, a step-less artifact) still lands
    inside the archive's folders, once each."""
    from django.core.files.base import ContentFile

    build = build_make()
    step = step_make(build, name="../../up")
    for name, attached in (("../../../etc/evil.sh", step), ("a.txt", None), ("a.txt", None)):
        artifact = Artifact(
            build=build,
            step=attached,
            name=name,
            kind="code",
            content="x",
            content_type="text/plain",
            size=1,
            checksum="",
        )
        artifact.file.save("f.txt", ContentFile(b"x"), save=True)

    names = zipfile.ZipFile(io.BytesIO(artifact_archive(build=build))).namelist()

    assert sorted(names) == ["build/a-2.txt", "build/a.txt", "step-1-..-..-up/etc/evil.sh"]
