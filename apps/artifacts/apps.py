from django.apps import AppConfig


class ArtifactsConfig(AppConfig):
    name = "apps.artifacts"
    label = "artifacts"
    verbose_name = "Artifacts"

    def ready(self) -> None:
        from apps.core.registry import NavItem, register_navigation

        register_navigation(
            NavItem("Artifacts", "admin:artifacts_artifact_changelist", "Builds",
                    icon="description", permission="artifacts.view_artifact", order=300),
        )  # fmt: skip
