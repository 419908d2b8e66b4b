"""Backing up and restoring the platform: its database and the files its rows reference.

A backup is a ``Backup`` row, queued (``backup_request``: the page, the API; sent to a worker
when the transaction commits) or created and run at once (``backup_run_now``: the ``backup``
command, the schedule's task). ``backup_run`` takes a consistent snapshot of the database
(``databases.py``), adds the files of the snapshot's rows and a manifest to one archive
(``archive.py``), encrypted when ``BACKUP_ENCRYPTION_KEY`` is set, keeps it in the ``backups``
storage, and applies the retention policy (``backups_prune``). One backup runs at a time.

``backup_restore`` unpacks and verifies the whole archive first (every checksum, the key, the
format and the schema: an archive of a newer schema than this code is refused), then asks for
confirmation, then replaces the database (one transaction) and writes the files, and finally
brings an older schema up to date (``migrate``) and the backups' own rows in line.
"""

from __future__ import annotations

import hashlib
import logging
import platform
import secrets
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import django
from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.files import File
from django.core.files.storage import Storage, storages
from django.core.management import call_command
from django.db import connections, transaction
from django.utils import timezone

from apps.core.dispatch import send_on_commit

from .archive import FORMAT, FORMAT_VERSION, ArchiveError, ArchiveWriter, archive_unpack, refusal
from .crypto import key_decode
from .databases import (
    DatabaseError,
    database_restore,
    database_snapshot,
    field_storage,
    migrations_missing,
    migrations_unknown,
    vendor_of,
)
from .models import Backup, BackupStatus, BackupTrigger

logger = logging.getLogger(__name__)

RUNNING_LOCK = "backups:running"


def backup_storage() -> Storage:
    return storages["backups"]


def _location(storage: Storage, name: str) -> str:
    try:
        return storage.path(name)
    except NotImplementedError:
        return f"{settings.STORAGES['backups']['BACKEND']}:{name}"


# --- running a backup -------------------------------------------------------------------------


def backup_request(*, by: User | None, trigger: str = BackupTrigger.MANUAL) -> Backup:
    """Queue a backup; a worker runs it once the transaction commits."""
    from .tasks import run

    with transaction.atomic():
        backup = Backup.objects.create(
            trigger=trigger, requested_by=by, celery_task_id=str(uuid.uuid4())
        )
        send_on_commit(run, args=[backup.pk], task_id=backup.celery_task_id)
    logger.info("backup %s queued (%s)", backup.pk, trigger)
    return backup


def backup_run_now(*, trigger: str, by: User | None = None) -> Backup:
    """Create a backup and run it in this process (the command, the scheduled task)."""
    backup = Backup.objects.create(trigger=trigger, requested_by=by)
    return backup_run(backup_id=backup.pk)


class _Log:
    """A backup's log: lines with the time, saved on the row as they come."""

    def __init__(self, backup: Backup) -> None:
        self.backup = backup
        self.lines: list[str] = []

    def __call__(self, message: str) -> None:
        self.lines.append(f"{timezone.now():%H:%M:%S} {message}")
        self.backup.log = "\n".join(self.lines)
        Backup.objects.filter(pk=self.backup.pk).update(log=self.backup.log)
        logger.info("backup %s: %s", self.backup.pk, message)


def _claim(backup_id: int) -> Backup | None:
    """Mark the backup running, unless it is not queued (a message delivered twice) or another
    backup is running (then it fails, saying so)."""
    stale = timezone.now() - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 60)
    with transaction.atomic():
        backup = Backup.objects.select_for_update().filter(pk=backup_id).first()
        if backup is None or backup.status != BackupStatus.QUEUED:
            return None
        Backup.objects.filter(status=BackupStatus.RUNNING, started_at__lt=stale).update(
            status=BackupStatus.FAILED,
            finished_at=timezone.now(),
            error="It stopped reporting: its worker was lost.",
        )
        try:
            free = cache.add(RUNNING_LOCK, backup.pk, timeout=settings.CELERY_TASK_TIME_LIMIT)
        except Exception:  # without the cache, the rows alone say whether one runs
            logger.warning("the backups' lock is unavailable (cache down)", exc_info=True)
            free = True
        running = Backup.objects.filter(status=BackupStatus.RUNNING).exclude(pk=backup.pk)
        if not free or running.exists():
            if free:
                _lock_release(backup.pk)
            backup.status = BackupStatus.FAILED
            backup.error = "Another backup was running; this one did not start."
            backup.finished_at = timezone.now()
            backup.save(update_fields=["status", "error", "finished_at"])
            return None
        backup.status = BackupStatus.RUNNING
        backup.started_at = timezone.now()
        backup.save(update_fields=["status", "started_at"])
    return backup


def _lock_release(backup_id: int) -> None:
    try:
        if cache.get(RUNNING_LOCK) == backup_id:
            cache.delete(RUNNING_LOCK)
    except Exception:
        logger.warning("could not release the backups' lock", exc_info=True)


def backup_run(*, backup_id: int) -> Backup:
    """Run a queued backup to its end (succeeded or failed, with its log); a backup that is
    not queued is left alone."""
    backup = _claim(backup_id)
    if backup is None:
        return Backup.objects.get(pk=backup_id)
    log = _Log(backup)
    storage = backup_storage()
    try:
        _archive_write(backup, storage, log)
    except Exception as error:
        logger.exception("backup %s failed", backup.pk)
        if backup.name:
            try:
                storage.delete(backup.name)
            except Exception:
                logger.warning("could not remove the archive of failed backup %s", backup.pk)
        log(f"failed: {error}")
        backup.status = BackupStatus.FAILED
        backup.error = str(error)[:5000] or type(error).__name__
        backup.name = backup.location = ""
    else:
        backup.status = BackupStatus.SUCCEEDED
    finally:
        backup.finished_at = timezone.now()
        backup.save()
        _lock_release(backup.pk)
    if backup.status == BackupStatus.SUCCEEDED:
        removed = backups_prune()
        if removed:
            log(f"retention removed backups {', '.join(f'#{pk}' for pk in removed)}")
    return backup


def archive_name(backup: Backup, *, encrypted: bool) -> str:
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    suffix = ".tar.gz.enc" if encrypted else ".tar.gz"
    return f"orchestra-backup-{stamp}-{backup.pk}-{secrets.token_hex(3)}{suffix}"


def _archive_write(backup: Backup, storage: Storage, log: _Log) -> None:
    key = key_decode(settings.BACKUP_ENCRYPTION_KEY) if settings.BACKUP_ENCRYPTION_KEY else None
    settings_dict = connections["default"].settings_dict
    vendor = vendor_of(settings_dict)
    name = archive_name(backup, encrypted=key is not None)
    with tempfile.TemporaryDirectory(prefix="orchestra-backup-") as folder:
        dump = Path(folder) / "database"
        started = timezone.now()
        snapshot = database_snapshot(settings_dict, dump)
        rows = sum(snapshot.row_counts.values())
        log(
            f"database snapshot ({vendor}): {rows} rows in {len(snapshot.row_counts)} tables, "
            f"{dump.stat().st_size} bytes, in {(timezone.now() - started).total_seconds():.1f} s"
        )
        path = Path(folder) / name
        with path.open("wb") as target:
            writer = ArchiveWriter(target, key)
            database = writer.add_path(f"database/{vendor}", dump)
            dump.unlink()
            files: list[dict[str, Any]] = []
            missing: list[dict[str, str]] = []
            for number, (label, stored) in enumerate(snapshot.files, 1):
                file_storage = field_storage(label)
                try:
                    size = file_storage.size(stored)
                    source = file_storage.open(stored, "rb")
                except OSError:
                    missing.append({"field": label, "name": stored})
                    continue
                with source:
                    part = writer.add(f"files/{number:06d}", source, size)
                files.append(
                    {
                        "member": part.member,
                        "field": label,
                        "name": stored,
                        "size": part.size,
                        "sha256": part.sha256,
                    }
                )
            if missing:
                log(
                    f"{len(missing)} file(s) the rows reference are not in storage: "
                    f"{', '.join(m['name'] for m in missing[:10])}"
                )
            summary = {
                "tables": len(snapshot.row_counts),
                "rows": rows,
                "files": len(files),
                "files_missing": len(missing),
                "database_bytes": database.size,
                "files_bytes": sum(f["size"] for f in files),
            }
            writer.finish(
                {
                    "format": FORMAT,
                    "format_version": FORMAT_VERSION,
                    "backup_id": backup.pk,
                    "archive": name,
                    "created_at": started.isoformat(),
                    "platform": {
                        "version": settings.VERSION,
                        "django": django.get_version(),
                        "python": platform.python_version(),
                    },
                    "database": {
                        "member": database.member,
                        "vendor": vendor,
                        "server_version": snapshot.server_version,
                        "tool": snapshot.tool,
                        "size": database.size,
                        "sha256": database.sha256,
                    },
                    "migrations": snapshot.migrations,
                    "row_counts": snapshot.row_counts,
                    "files": files,
                    "files_missing": missing,
                    "summary": summary,
                }
            )
        backup.size = path.stat().st_size
        backup.sha256 = _sha256(path)
        with path.open("rb") as archive:
            backup.name = storage.save(name, File(archive, name=name))
    backup.location = _location(storage, backup.name)
    backup.encrypted = key is not None
    backup.database_vendor = vendor
    backup.summary = summary
    log(
        f"archive stored: {backup.location} ({backup.size} bytes, {len(files)} files, "
        f"{'encrypted' if key else 'not encrypted'})"
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


# --- retention --------------------------------------------------------------------------------


def backups_prune(*, now: datetime | None = None) -> list[int]:
    """Apply the retention policy; return the ids of the backups removed (archive and row).

    Successful backups: at most ``BACKUP_KEEP_LAST``, none older than ``BACKUP_KEEP_DAYS`` (a
    limit of 0 is no limit), the newest always kept. Failed ones (they have no archive) go
    when older than ``BACKUP_KEEP_DAYS``. Queued and running ones are never touched."""
    now = now or timezone.now()
    keep_last = settings.BACKUP_KEEP_LAST
    oldest = now - timedelta(days=settings.BACKUP_KEEP_DAYS) if settings.BACKUP_KEEP_DAYS else None
    doomed: list[Backup] = []
    succeeded = Backup.objects.filter(status=BackupStatus.SUCCEEDED).order_by("-created_at", "-id")
    for index, backup in enumerate(succeeded):
        if index == 0:
            continue
        if (keep_last and index >= keep_last) or (oldest and backup.created_at < oldest):
            doomed.append(backup)
    if oldest:
        doomed += Backup.objects.filter(status=BackupStatus.FAILED, created_at__lt=oldest)
    storage = backup_storage()
    removed = []
    for backup in doomed:
        if backup.name:
            try:
                storage.delete(backup.name)
            except Exception:
                logger.exception("could not delete the archive of backup %s", backup.pk)
                continue
        removed.append(backup.pk)
        backup.delete()
    if removed:
        logger.info("retention removed backups %s", removed)
    return sorted(removed)


# --- restoring --------------------------------------------------------------------------------


class RestoreCancelledError(Exception):
    pass


@dataclass
class Restored:
    manifest: dict[str, Any]
    files: int
    migrated: list[str] = field(default_factory=list)


@contextmanager
def _archive_source(archive: str | Path) -> Iterator[IO[bytes]]:
    """A local file, or else an archive of that name in the backups storage."""
    path = Path(archive)
    if path.is_file():
        with path.open("rb") as source:
            yield source
        return
    storage = backup_storage()
    try:
        exists = storage.exists(str(archive))
    except Exception:
        exists = False
    if not exists:
        raise ArchiveError(f"Refused: no file {archive} here nor in the backups storage.")
    with storage.open(str(archive), "rb") as source:
        yield source


def archive_verify(*, archive: str | Path, key: str | None = None) -> dict[str, Any]:
    """The manifest of a sound archive (``ArchiveError`` otherwise); changes nothing."""
    with tempfile.TemporaryDirectory(prefix="orchestra-restore-") as folder:
        return _opened(archive, key, Path(folder), connections["default"].settings_dict)[0]


def _opened(
    archive: str | Path, key: str | None, folder: Path, target: dict[str, Any]
) -> tuple[dict[str, Any], Any]:
    key = settings.BACKUP_ENCRYPTION_KEY if key is None else key
    with _archive_source(archive) as source:
        opened = archive_unpack(source, key=key, folder=folder)
    manifest = opened.manifest
    vendor = vendor_of(target)
    if manifest["database"].get("vendor") != vendor:
        raise refusal(
            f"the archive holds a {manifest['database'].get('vendor')} database and "
            f"this platform uses {vendor}"
        )
    unknown = migrations_unknown(manifest.get("migrations") or {})
    if unknown:
        raise refusal(
            f"the archive comes from a newer schema: this code does not have its migrations "
            f"{', '.join(unknown[:5])}{' …' if len(unknown) > 5 else ''}; upgrade the platform "
            "first, then restore"
        )
    for entry in manifest.get("files") or []:
        try:
            field_storage(entry["field"])
        except (LookupError, AssertionError, ValueError) as error:
            raise refusal(
                f"the archive holds files of {entry['field']}, which this code does not have"
            ) from error
    return manifest, opened


def backup_restore(
    *,
    archive: str | Path,
    key: str | None = None,
    confirm: Callable[[dict[str, Any]], bool] | None = None,
    database: dict[str, Any] | None = None,
    log: Callable[[str], None] = logger.info,
) -> Restored:
    """Restore ``archive`` (a path, or a name in the backups storage) into the platform's
    database (or the ``database`` given, a ``DATABASES`` entry) and its files' storage.

    Everything is verified before anything changes; ``confirm(manifest)`` may still say no.
    The database is replaced in one transaction, then the files are written. Into the
    platform's own database, a schema older than the code is migrated and backups that were
    queued or running in the snapshot are marked failed (that of the archive succeeded)."""
    own = database is None
    target = database or connections["default"].settings_dict
    with tempfile.TemporaryDirectory(prefix="orchestra-restore-") as tmp:
        folder = Path(tmp)
        manifest, opened = _opened(archive, key, folder, target)
        summary = manifest.get("summary") or {}
        log(
            f"archive verified: backup #{manifest.get('backup_id')} "
            f"of {manifest.get('created_at')}, "
            f"{summary.get('rows')} rows, {summary.get('files')} files"
            f"{', encrypted' if opened.encrypted else ''}"
        )
        if confirm is not None and not confirm(manifest):
            raise RestoreCancelledError("Restore cancelled; nothing was changed.")
        if own:
            connections.close_all()
        try:
            database_restore(target, opened.path(manifest["database"]["member"]), folder)
        except DatabaseError as error:
            raise DatabaseError(f"{error}\nThe database was not changed.") from error
        log("database restored")
        for entry in manifest.get("files") or []:
            storage = field_storage(entry["field"])
            if storage.exists(entry["name"]):
                storage.delete(entry["name"])
            with opened.path(entry["member"]).open("rb") as source:
                saved = storage.save(entry["name"], File(source, name=entry["name"]))
            if saved != entry["name"]:
                raise OSError(f"file {entry['name']} was stored as {saved}")
        log(f"{len(manifest.get('files') or [])} files restored")
    restored = Restored(manifest=manifest, files=len(manifest.get("files") or []))
    if own:
        restored.migrated = migrations_missing(manifest.get("migrations") or {})
        if restored.migrated:
            call_command("migrate", interactive=False, verbosity=0)
            log(f"migrated {len(restored.migrated)} migration(s) newer than the archive")
        _backups_reconcile(manifest)
    return restored


def _backups_reconcile(manifest: dict[str, Any]) -> None:
    """The snapshot holds the archive's own backup as running (and maybe others queued or
    running): that one succeeded, the others will never finish."""
    now = timezone.now()
    Backup.objects.filter(
        pk=int(manifest.get("backup_id") or 0), status=BackupStatus.RUNNING
    ).update(
        status=BackupStatus.SUCCEEDED,
        finished_at=now,
        name=manifest.get("archive", ""),
    )
    Backup.objects.filter(status__in=[BackupStatus.QUEUED, BackupStatus.RUNNING]).update(
        status=BackupStatus.FAILED,
        finished_at=now,
        error="Interrupted: the database was restored from a backup taken while it ran.",
    )
