from django.core.management.base import BaseCommand, CommandError

from apps.providers.models import LlmModel, Provider
from apps.providers.services import models_apply_catalog_prices


class Command(BaseCommand):
    help = (
        "Give existing models the price catalog's prices and context windows (after an upgrade "
        "of the catalog, or for models made before it). Prices typed by a person are kept."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("providers", nargs="*", help="Provider names (default: every one).")

    def handle(self, *args, providers: list[str], **options) -> None:
        models = LlmModel.objects.all()
        if providers:
            found = set(Provider.objects.filter(name__in=providers).values_list("name", flat=True))
            unknown = set(providers) - found
            if unknown:
                raise CommandError(f"Unknown provider(s): {', '.join(sorted(unknown))}.")
            models = models.filter(provider__name__in=providers)
        result = models_apply_catalog_prices(models=models)
        for name in result.changed:
            self.stdout.write(f"updated {name}")
        self.stdout.write(result.summary())
