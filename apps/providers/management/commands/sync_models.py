from django.core.management.base import BaseCommand, CommandError

from apps.providers.llm.errors import ProviderError
from apps.providers.models import Provider
from apps.providers.services import provider_sync_models


class Command(BaseCommand):
    help = (
        "Import the models a provider lists at /v1/models, priced from the price catalog when "
        "it knows them (else at zero); prices typed by a person are kept."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("providers", nargs="*", help="Provider names.")
        parser.add_argument("--all", action="store_true", help="Every enabled provider.")

    def handle(self, *args, providers: list[str], all: bool, **options) -> None:
        if all:
            chosen = list(Provider.objects.filter(enabled=True))
        elif providers:
            chosen = list(Provider.objects.filter(name__in=providers))
            unknown = set(providers) - {p.name for p in chosen}
            if unknown:
                raise CommandError(f"Unknown provider(s): {', '.join(sorted(unknown))}.")
        else:
            raise CommandError("Name providers, or use --all.")
        failed = []
        for provider in chosen:
            try:
                result = provider_sync_models(provider=provider)
            except ProviderError as error:
                failed.append(provider.name)
                self.stderr.write(f"{provider.name}: {error.code}: {error.message}")
                continue
            self.stdout.write(
                f"{provider.name}: created {len(result.created)} "
                f"({', '.join(result.created) or '-'}), already known {len(result.existing)}"
            )
        if failed:
            raise CommandError(f"Could not sync: {', '.join(failed)}.")
