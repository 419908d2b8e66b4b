from django.apps import AppConfig

PUBLIC = frozenset({"models", "selectors", "services"})


class GitHubConfig(AppConfig):
    name = "apps.github"
    label = "github"
    verbose_name = "GitHub"

    def ready(self) -> None:
        from apps.builds.plugins import register_input_source, register_step_kind
        from apps.core.registry import Feature, register_feature

        from . import checks  # noqa: F401  (registers the "github" health check)
        from .selectors import github_enabled
        from .steps import COMMENT, ISSUE, PULL_REQUEST

        register_step_kind(PULL_REQUEST)
        register_step_kind(COMMENT)
        register_input_source(ISSUE)

        register_feature(
            Feature("github", "The GitHub connection: issues and pull requests.", github_enabled)
        )
