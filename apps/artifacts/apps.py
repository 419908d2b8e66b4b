from django.apps import AppConfig

# What other apps may import of this app (tests/core/test_structure.py holds every app to its
# face).
PUBLIC = frozenset({"models", "rendering", "selectors", "services"})
PUBLIC_STATIC = frozenset({"artifacts/artifacts.css"})


class ArtifactsConfig(AppConfig):
    name = "apps.artifacts"
    label = "artifacts"
    verbose_name = "Artifacts"

    def ready(self) -> None:
        from apps.core.registry import NavItem, Page, register_navigation, register_pages

        register_navigation(
            NavItem(
                "Artifacts",
                "admin:artifacts_artifact_changelist",
                "Builds",
                icon="description",
                permission="artifacts.view_artifact",
                order=300,
            ),
        )
        # /admin/artifacts/ is the admin's index of this app: the browser takes another slug.
        register_pages(
            Page(
                "artifact-browser",
                "Artifact browser",
                "apps.artifacts.pages.artifact_browser",
                "Builds",
                icon="folder_open",
                permission="artifacts.view_artifact",
                order=299,
                urls=("<int:pk>/",),
            ),
        )
