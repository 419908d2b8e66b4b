import os

from django.core.management.base import BaseCommand, CommandError

from apps.providers.bootstrap import BootstrapError, providers_bootstrap_from_env


class Command(BaseCommand):
    help = (
        "Create or update the providers and routing settings named by the environment "
        "(OPENAI_API_KEY, XAI_API_KEY/GROK_API_KEY, OLLAMA_HOST/OLLAMA_URL, LLM_DEFAULT_PROVIDER, "
        "LLM_LOAD_BALANCING, LLM_ENABLE_FALLBACK...), each value once: a value applied before is "
        "not applied again until it changes. Run by `make run` and the production migrate step."
    )

    def handle(self, *args, **options) -> None:
        try:
            report = providers_bootstrap_from_env(environ=os.environ)
        except BootstrapError as error:
            raise CommandError(f"Cannot set up providers from the environment: {error}") from None
        for line in report.lines:
            self.stdout.write(f"Environment: {line}")
