from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from apps.accounts.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key for a user and print it once; only its hash is stored."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="cli", help="A label for the key.")
        parser.add_argument("--expires-in-days", type=int, default=None)
        parser.add_argument(
            "--rpm-limit", type=int, default=None, help="LLM requests per minute (default: none)."
        )
        parser.add_argument(
            "--tpm-limit", type=int, default=None, help="Tokens per minute (default: none)."
        )

    def handle(
        self,
        *args,
        username: str,
        name: str,
        expires_in_days: int | None,
        rpm_limit: int | None,
        tpm_limit: int | None,
        **options,
    ):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        if expires_in_days is not None and expires_in_days <= 0:
            raise CommandError("--expires-in-days must be positive.")
        expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
        try:
            api_key, raw_key = api_key_create(
                user=user,
                name=name,
                expires_at=expires_at,
                rpm_limit=rpm_limit,
                tpm_limit=tpm_limit,
            )
        except ValidationError as error:
            raise CommandError(
                "; ".join(f"--{k.replace('_', '-')}: {v[0]}" for k, v in error.message_dict.items())
            ) from error
        self.stderr.write(f"Created key {api_key} for {username}. It is shown only once:")
        self.stdout.write(raw_key)
