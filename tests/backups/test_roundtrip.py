"""Backup, then restore, on PostgreSQL: a build run by a real worker (its artifacts stored) and
calls through /v1 recorded first; restored into an empty database the rows of every table are
the ones backed up, and the artifact files come back byte for byte; restored into the running
database itself, whatever changed since the backup is undone."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.files.storage import default_storage

from apps.accounts.models import Role
from apps.agents.models import Agent
from apps.artifacts.models import Artifact
from apps.backups.models import Backup, BackupStatus, BackupTrigger
from apps.backups.services import backup_restore, backup_run_now
from apps.builds.models import Build, BuildStatus
from apps.builds.services import build_create
from tests.backups.conftest import KEY, postgres_rows
from tests.support.factories import user_create
from tests.support.waiting import eventually

pytestmark = pytest.mark.django_db(transaction=True)

CODE = (
    "Done.\n\n```python app/models.py\nclass Widget:\n    pass\n```\n\n"
    "```diff\n--- a/app/urls.py\n+++ b/app/urls.py\n@@ -1,2 +1,3 @@\n urlpatterns = [\n"
    "+    path('', index),\n ]\n```\n"
)
HELLO = [{"role": "user", "content": "hello"}]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def platform_data(two_providers, upstream_a, backups_worker, gateway, recorded_calls) -> Build:
    """A finished build with artifacts, and calls through /v1, all recorded."""
    Agent.objects.create(name="coder", role="coder", model="chat", system_prompt="You code.")
    upstream_a.enqueue({"content": "## Plan\n1. A model."}, {"content": CODE})
    build = build_create(
        title="Widgets",
        input="a widget app",
        by=user_create(role=Role.OPERATOR),
        steps=[
            {"name": "plan", "agent": "coder", "prompt": "Plan: {input}"},
            {"name": "code", "agent": "coder", "prompt": "Code: {previous}"},
        ],
    )
    eventually(lambda: Build.objects.get(pk=build.pk).finished, 30, "the build finished")
    build.refresh_from_db()
    assert build.status == BuildStatus.SUCCEEDED, build.error
    for _ in range(3):
        gateway.chat.completions.create(model="chat", messages=HELLO)
    recorded_calls(5)  # the build's two and these three
    assert Artifact.objects.filter(build=build).count() >= 3
    return build


def stored_files() -> dict[str, str]:
    found: dict[str, str] = {}
    for artifact in Artifact.objects.all():
        name = str(artifact.file.name)
        with default_storage.open(name, "rb") as file:
            found[name] = sha256(file.read())
        assert found[name] == artifact.checksum
    return found


def test_restore_into_an_empty_database_gives_the_same_rows_and_files(
    platform_data, fresh_database, settings, tmp_path
):
    settings.BACKUP_ENCRYPTION_KEY = KEY
    files = stored_files()
    before = postgres_rows()

    backup = backup_run_now(trigger=BackupTrigger.COMMAND)

    assert backup.status == BackupStatus.SUCCEEDED, backup.error
    assert backup.encrypted and backup.name.endswith(".tar.gz.enc")
    assert Path(backup.location).stat().st_size == backup.size
    assert backup.summary["files"] == len(files) and backup.summary["files_missing"] == 0
    settings.MEDIA_ROOT = str(tmp_path / "another-media")  # the files must come from the archive

    restored = backup_restore(archive=backup.location, database=fresh_database)

    assert restored.files == len(files)
    after = postgres_rows(fresh_database["NAME"])
    assert set(after) == set(before)
    # The snapshot holds this backup's own row, then running; the rest is what was there.
    snapshot_rows = after.pop("backups_backup")
    assert len(snapshot_rows) == 1 and "'running'" in snapshot_rows[0]
    before.pop("backups_backup")
    differing = [table for table in before if before[table] != after[table]]
    assert differing == []
    assert sum(len(rows) for rows in after.values()) > 100  # migrations, permissions, the build
    restored_files = {}
    for name in files:
        assert (tmp_path / "another-media" / name).is_file(), name
        restored_files[name] = sha256((tmp_path / "another-media" / name).read_bytes())
    assert restored_files == files


def test_restore_into_the_running_database_undoes_what_changed_since(platform_data):
    files = stored_files()
    before = postgres_rows()
    backup = backup_run_now(trigger=BackupTrigger.COMMAND)
    assert backup.status == BackupStatus.SUCCEEDED, backup.error
    # Changes after the backup: a build gone (its artifacts with it), a user added, a file
    # overwritten.
    artifact = Artifact.objects.filter(build=platform_data).first()
    assert artifact is not None
    name = artifact.file.name
    build_id = platform_data.pk
    platform_data.delete()
    user_create(role=Role.VIEWER, username="after-the-backup")
    (Path(default_storage.location) / name).write_bytes(b"changed")
    asked = []

    backup_restore(archive=backup.name, confirm=lambda manifest: asked.append(manifest) or True)

    assert asked and asked[0]["backup_id"] == backup.pk
    after = postgres_rows()
    assert not User.objects.filter(username="after-the-backup").exists()
    assert Build.objects.filter(pk=build_id).exists()
    own = Backup.objects.get(pk=backup.pk)
    assert own.status == BackupStatus.SUCCEEDED and own.name == backup.name
    after.pop("backups_backup")
    before.pop("backups_backup")
    assert [table for table in before if before[table] != after[table]] == []
    assert stored_files() == files
    # The restored database goes on working: new rows get new ids (the sequences came back).
    newest = User.objects.order_by("-pk").first()
    assert newest is not None and user_create(role=Role.VIEWER).pk > newest.pk
