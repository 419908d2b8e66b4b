from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.github.services import ENV_FIELDS, github_bootstrap_from_env


class Command(BaseCommand):
    help = (
        "Apply GITHUB_ENABLED, GITHUB_TOKEN, GITHUB_OWNER and GITHUB_REPO to the GitHub "
        "settings, each value once (an admin's edit stands until the variable changes)."
    )

    def handle(self, *args, **options) -> None:
        environ = {variable: str(getattr(settings, variable)) for variable, _ in ENV_FIELDS}
        try:
            lines = github_bootstrap_from_env(environ=environ)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from error
        for line in lines:
            self.stdout.write(line)
