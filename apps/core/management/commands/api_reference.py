from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.api_reference import REFERENCE_DIR, openapi_schema, stale_pages, write_pages


class Command(BaseCommand):
    help = (
        "Write the REST API reference (docs/api/reference/) from the OpenAPI schema; with "
        "--check, change nothing and fail when the committed reference is not current."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--check", action="store_true", help="Only say whether the reference is current."
        )

    def handle(self, *args: Any, check: bool, **options: Any) -> None:
        schema = openapi_schema()
        if check:
            stale = stale_pages(schema)
            if stale:
                raise CommandError(
                    f"The API reference is stale ({', '.join(stale)}): run manage.py api_reference."
                )
            self.stdout.write("The API reference is current.")
            return
        written = write_pages(schema)
        self.stdout.write(f"Wrote {len(written)} pages to {REFERENCE_DIR}.")
