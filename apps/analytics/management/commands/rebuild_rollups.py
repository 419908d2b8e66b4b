from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from apps.analytics.services import rollups_rebuild


def _moment(text: str) -> datetime:
    moment = parse_datetime(text)
    if moment is None:
        day = parse_date(text)
        if day is None:
            raise CommandError(f"--since {text!r}: give a date (2026-01-31) or an ISO datetime")
        moment = datetime(day.year, day.month, day.day)
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment, UTC)


class Command(BaseCommand):
    help = (
        "Recompute the hourly analytics rollups from the raw call records (all closed hours, "
        "or those from --since): for records stored before analytics existed, or after a fault."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--since", help="A date or ISO datetime (UTC unless it says).")

    def handle(self, *args: Any, since: str | None = None, **options: Any) -> None:
        hours = rollups_rebuild(since=_moment(since) if since else None)
        self.stdout.write(f"Rolled up {hours} hour{'s' if hours != 1 else ''}.")
