"""Backup and restore on SQLite, as ``make run`` keeps its data (no PostgreSQL, no Redis
configured): the commands on a populated platform, restored into an empty one, give the same
rows in every table and the same artifact files. Run as processes of their own, on their own
var folders."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.support.processes import REPO_ROOT, fresh_checkout_env

POPULATE = """
from decimal import Decimal
from apps.accounts.models import Role
from apps.accounts.services import user_set_role
from apps.artifacts.services import artifacts_store_for_step
from apps.builds.models import Build, BuildStep
from apps.providers.models import LlmCall, Provider
from django.contrib.auth.models import User
user = User.objects.create_user(username="ada", password="not-used")
user_set_role(user=user, role=Role.OPERATOR)
Provider.objects.create(name="fake", kind="openai_compatible", base_url="http://127.0.0.1:9/v1")
build = Build.objects.create(title="Widgets", input="a widget app", status="succeeded")
step = BuildStep.objects.create(build=build, position=1, name="code", prompt_template="{input}",
                                status="succeeded", output="x")
code = "Here.\\n\\n```python app/models.py\\nclass W:\\n    pass\\n```\\n"
artifacts_store_for_step(step=step, text=code)
from django.utils import timezone
LlmCall.objects.create(created_at=timezone.now(), entry_point="openai", provider_name="fake",
                       model_name="m", requested_model="m", status="success", latency_ms=12.5,
                       input_tokens=3, output_tokens=4, cost=Decimal("0.0001"))
"""


def manage(var_dir: Path, *args: str, stdin: str | None = None) -> str:
    env = fresh_checkout_env(var_dir, BACKUP_KEEP_LAST="5")
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def rows(database: Path) -> dict[str, list[str]]:
    with sqlite3.connect(database) as connection:
        tables = [
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        return {
            table: sorted(repr(row) for row in connection.execute(f'SELECT * FROM "{table}"'))
            for table in tables
        }


def files(media: Path) -> dict[str, str]:
    return {
        str(path.relative_to(media)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(media.rglob("*"))
        if path.is_file()
    }


def test_backup_then_restore_into_an_empty_sqlite_platform(tmp_path):
    source, target = tmp_path / "source", tmp_path / "target"
    manage(source, "migrate", "--verbosity=0")
    manage(source, "shell", "-c", POPULATE)
    before = rows(source / "db.sqlite3")
    stored = files(source / "media")
    assert len(stored) == 2  # the step's report and its code file

    archive = manage(source, "backup").strip().splitlines()[-1]

    assert Path(archive).is_file() and Path(archive).parent == source / "backups"
    assert not (target / "db.sqlite3").exists()
    restored = manage(target, "restore", archive, "--yes")

    assert "Restored backup" in restored
    after = rows(target / "db.sqlite3")
    snapshot = after.pop("backups_backup")
    before.pop("backups_backup")
    for found in (before, after):  # the backup's own row numbered after ``before`` was read
        found["sqlite_sequence"] = [r for r in found["sqlite_sequence"] if "backups_" not in r]
    assert len(snapshot) == 1 and "'succeeded'" in snapshot[0]  # its own row, reconciled
    assert [table for table in before if before[table] != after.get(table)] == []
    assert set(after) == set(before)
    assert files(target / "media") == stored
