"""What restore refuses, each with a clear message and the data left as it was: a corrupted
archive, a truncated one, a wrong key (and none), and an archive of a newer schema."""

from __future__ import annotations

import base64
import io
import json
import os
import tarfile
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.accounts.models import Role
from apps.backups.archive import ArchiveError, ArchiveWriter, archive_unpack
from apps.backups.models import BackupStatus, BackupTrigger
from apps.backups.services import backup_restore, backup_run_now
from tests.backups.conftest import KEY, postgres_rows
from tests.support.factories import user_create

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=["encrypted", "plain"])
def any_archive(request, settings) -> Path:
    """An archive encrypted or not (restoring it then needs no key)."""
    encrypted = request.param == "encrypted"
    path = request.getfixturevalue("archive")
    if not encrypted:
        settings.BACKUP_ENCRYPTION_KEY = ""
        backup = backup_run_now(trigger=BackupTrigger.COMMAND)
        assert backup.status == BackupStatus.SUCCEEDED and not backup.encrypted
        path = Path(backup.location)
    return path


@pytest.fixture
def archive(settings) -> Path:
    settings.BACKUP_ENCRYPTION_KEY = KEY
    user_create(role=Role.ADMIN, username="in-the-backup")
    backup = backup_run_now(trigger=BackupTrigger.COMMAND)
    assert backup.status == BackupStatus.SUCCEEDED, backup.error
    user_create(role=Role.VIEWER, username="after-the-backup")
    return Path(backup.location)


def refused(archive: Path, expected: str, **options) -> None:
    """Restoring is refused with ``expected`` in the message, through the service and the
    command alike, and no row of any table changed."""
    before = postgres_rows()
    with pytest.raises(ArchiveError, match=expected) as refusal:
        backup_restore(archive=archive, **options)
    assert "Nothing was changed" in str(refusal.value)
    with pytest.raises(CommandError, match=expected):
        call_command("restore", str(archive), "--yes")
    assert postgres_rows() == before


def test_a_sound_archive_passes_the_check(archive, capsys):
    call_command("restore", str(archive), "--check")
    assert "The archive is sound" in capsys.readouterr().out


def test_a_corrupted_archive_is_refused(any_archive, tmp_path):
    data = bytearray(any_archive.read_bytes())
    data[len(data) // 2] ^= 0x01
    damaged = tmp_path / "damaged.tar.gz.enc"
    damaged.write_bytes(bytes(data))
    refused(damaged, "damaged")


def test_a_truncated_archive_is_refused(any_archive, tmp_path):
    data = any_archive.read_bytes()
    for cut in (len(data) // 2, len(data) - 10):
        short = tmp_path / f"short-{cut}.tar.gz.enc"
        short.write_bytes(data[:cut])
        refused(short, "truncated")


def test_a_wrong_key_or_none_is_refused(archive, settings):
    settings.BACKUP_ENCRYPTION_KEY = base64.urlsafe_b64encode(os.urandom(32)).decode()
    refused(archive, "wrong key")
    settings.BACKUP_ENCRYPTION_KEY = ""
    refused(archive, "BACKUP_ENCRYPTION_KEY is not set")
    settings.BACKUP_ENCRYPTION_KEY = "not a key"
    refused(archive, "32 random bytes")


def rewritten(archive: Path, target: Path, change) -> Path:
    """The archive unpacked, its manifest changed by ``change`` and packed again (a sound
    archive, as a newer platform could have written it)."""
    folder = target.parent / "unpacked"
    folder.mkdir()
    with archive.open("rb") as source:
        opened = archive_unpack(source, key=KEY, folder=folder)
    manifest = change(json.loads(json.dumps(opened.manifest)))
    with target.open("wb") as out:
        writer = ArchiveWriter(out, base64.urlsafe_b64decode(KEY))
        for entry in [manifest["database"], *manifest["files"]]:
            writer.add_path(entry["member"], opened.path(entry["member"]))
        writer.finish(manifest)
    return target


def test_an_archive_of_a_newer_schema_is_refused(archive, tmp_path):
    def newer(manifest: dict) -> dict:
        manifest["migrations"]["builds"].append("9999_from_the_future")
        return manifest

    refused(rewritten(archive, tmp_path / "newer.tar.gz.enc", newer), "newer schema")


def test_an_archive_of_a_newer_format_is_refused(archive, tmp_path):
    def newer(manifest: dict) -> dict:
        manifest["format_version"] = 99
        return manifest

    refused(rewritten(archive, tmp_path / "format.tar.gz.enc", newer), "format version 99")


def test_a_part_that_differs_from_the_manifest_is_refused(archive, tmp_path):
    def lie(manifest: dict) -> dict:
        manifest["database"]["sha256"] = "0" * 64
        return manifest

    refused(rewritten(archive, tmp_path / "lie.tar.gz.enc", lie), "checksum of database")


def test_a_member_the_manifest_does_not_list_is_refused(tmp_path):
    target = tmp_path / "extra.tar.gz"
    with target.open("wb") as out:
        writer = ArchiveWriter(out, None)
        writer.add("files/000001", io.BytesIO(b"x"), 1)
        writer.finish(
            {
                "format": "orchestra-backup",
                "format_version": 1,
                "database": {"member": "files/000001", "size": 1, "sha256": "0"},
                "files": [],
            }
        )
    with pytest.raises(ArchiveError, match="checksum"):
        backup_restore(archive=target)
    other = tmp_path / "not-a-backup.tar.gz"
    with tarfile.open(other, "w:gz") as tar:
        tar.addfile(tarfile.TarInfo("../../etc/passwd"), io.BytesIO())
    with pytest.raises(ArchiveError, match="unexpected member"):
        backup_restore(archive=other)


def test_a_missing_archive_is_refused():
    with pytest.raises(ArchiveError, match="no file"):
        backup_restore(archive="no-such-backup.tar.gz")


def test_declining_the_confirmation_changes_nothing(archive, monkeypatch, capsys):
    before = postgres_rows()
    monkeypatch.setattr("builtins.input", lambda prompt: "no")
    with pytest.raises(CommandError, match="cancelled"):
        call_command("restore", str(archive))
    assert "replaces the whole database" in capsys.readouterr().out
    assert postgres_rows() == before
