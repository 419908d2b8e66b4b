from django.core.management.base import BaseCommand, CommandError

from apps.backups.models import BackupStatus, BackupTrigger
from apps.backups.services import backup_run_now


class Command(BaseCommand):
    help = (
        "Back up the database and the artifact files now, in this process, into the backups "
        "storage (BACKUP_DIR by default); prints the archive's path last. The platform may "
        "keep running."
    )

    def handle(self, *args, **options) -> None:
        backup = backup_run_now(trigger=BackupTrigger.COMMAND)
        if backup.status != BackupStatus.SUCCEEDED:
            raise CommandError(f"Backup #{backup.pk} failed: {backup.error}")
        self.stderr.write(backup.log)
        self.stdout.write(backup.location)
