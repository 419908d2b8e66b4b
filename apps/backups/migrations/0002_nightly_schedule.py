"""The default schedule: a backup every night at 03:00 UTC, a django-celery-beat periodic task
that admins edit (time, on/off) in Scheduled tasks. Created once; later edits stand."""

from django.db import migrations

TASK = "backups.run_scheduled"


def schedule(apps, schema_editor) -> None:
    periodic_task = apps.get_model("django_celery_beat", "PeriodicTask")
    crontab = apps.get_model("django_celery_beat", "CrontabSchedule")
    if periodic_task.objects.filter(task=TASK).exists():
        return
    nightly, _ = crontab.objects.get_or_create(
        minute="0",
        hour="3",
        day_of_week="*",
        day_of_month="*",
        month_of_year="*",
        timezone="UTC",
    )
    periodic_task.objects.create(
        name="Nightly backup",
        task=TASK,
        crontab=nightly,
        enabled=True,
        description="Backs up the database and the artifact files (apps/backups).",
    )


def unschedule(apps, schema_editor) -> None:
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(task=TASK).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("backups", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(schedule, unschedule)]
