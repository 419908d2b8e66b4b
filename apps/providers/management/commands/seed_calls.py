import time

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.providers.seeding import call_records_seed


class Command(BaseCommand):
    help = (
        "Store COUNT made-up LLM call records (with attempts) spread over the last DAYS days, "
        "for trying analytics and storage at scale. Uses the database's providers and models "
        "(creates a few, disabled, if there are none) and its API keys (creates three, in "
        "three workspaces, if none); then rolls up the hours it wrote (rebuild_rollups)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--count", type=int, required=True, help="How many calls.")
        parser.add_argument("--days", type=float, default=90.0, help="Over how many days (90).")
        parser.add_argument(
            "--id-version",
            type=int,
            choices=(4, 7),
            default=7,
            help="7: time-ordered ids, as calls get now; 4: random ones, as calls had before.",
        )

    def handle(self, *args, count: int, days: float, id_version: int, **options) -> None:
        started = time.monotonic()
        try:
            seeded = call_records_seed(count=count, days=days, id_version=id_version)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"{seeded.calls} calls ({seeded.attempts} attempts) from "
            f"{seeded.first:%Y-%m-%d %H:%M} to {seeded.last:%Y-%m-%d %H:%M} UTC "
            f"in {time.monotonic() - started:.1f} s"
        )
        # The analytics app's own roll, on the closed hours written; the open one is marked
        # for beat to roll once it has closed.
        started = time.monotonic()
        call_command("rebuild_rollups", since=seeded.first.isoformat(), stdout=self.stdout)
        self.stdout.write(f"(rolled up in {time.monotonic() - started:.1f} s)")
