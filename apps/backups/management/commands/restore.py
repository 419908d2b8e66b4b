from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.backups.archive import ArchiveError
from apps.backups.databases import DatabaseError
from apps.backups.services import RestoreCancelledError, archive_verify, backup_restore


class Command(BaseCommand):
    help = (
        "Restore a backup: ARCHIVE is a file, or an archive's name in the backups storage. The "
        "whole archive is verified first (checksums, key, schema); then, once confirmed, the "
        "database is replaced and the artifact files written. Stop the web processes, workers "
        "and beat first, and start them again after."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("archive")
        parser.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")
        parser.add_argument(
            "--check", action="store_true", help="Only verify the archive; change nothing."
        )

    def handle(self, *args: Any, archive: str, yes: bool, check: bool, **options: Any) -> None:
        try:
            if check:
                manifest = archive_verify(archive=archive)
                self.stdout.write(
                    self.style.SUCCESS(
                        f"The archive is sound: backup #{manifest.get('backup_id')} of "
                        f"{manifest.get('created_at')}."
                    )
                )
                return
            restored = backup_restore(
                archive=archive, confirm=None if yes else self._confirm, log=self.stdout.write
            )
        except (ArchiveError, RestoreCancelledError, DatabaseError) as error:
            raise CommandError(str(error)) from error
        self.stdout.write(
            self.style.SUCCESS(
                f"Restored backup #{restored.manifest.get('backup_id')} of "
                f"{restored.manifest.get('created_at')}: the database and {restored.files} files."
            )
        )

    def _confirm(self, manifest: dict[str, Any]) -> bool:
        summary = manifest.get("summary") or {}
        self.stdout.write(
            f"This replaces the whole database and the artifact files with backup "
            f"#{manifest.get('backup_id')} of {manifest.get('created_at')} "
            f"({summary.get('rows')} rows, {summary.get('files')} files). Everything written "
            "since is lost."
        )
        try:
            answer = input("Type 'yes' to restore: ")
        except EOFError:
            return False
        return answer.strip().lower() == "yes"
