from django.apps import AppConfig

PUBLIC = frozenset({"models", "selectors", "services"})


class BackupsConfig(AppConfig):
    name = "apps.backups"
    label = "backups"
    verbose_name = "Backups"

    def ready(self) -> None:
        from apps.core.registry import Page, register_pages

        from . import checks  # noqa: F401  (registers the "backups" health check)
        from .models import MANAGE_PERMISSION

        # /admin/backups/ is the admin's index of this app: the page takes another slug.
        register_pages(
            Page(
                "backup-runs",
                "Backups",
                "apps.backups.pages.backups",
                "System",
                icon="backup",
                permission=MANAGE_PERMISSION,
                order=985,
            ),
        )
