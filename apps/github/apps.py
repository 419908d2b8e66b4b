from django.apps import AppConfig

PUBLIC = frozenset({"models", "selectors", "services"})


class GitHubConfig(AppConfig):
    name = "apps.github"
    label = "github"
    verbose_name = "GitHub"

    def ready(self) -> None:
        from apps.builds.plugins import register_input_source, register_step_kind
        from apps.core.registry import Feature, Page, register_feature, register_pages

        from . import checks  # noqa: F401  (registers the "github" health check)
        from .selectors import github_enabled
        from .steps import COMMENT, ISSUE, PULL_REQUEST

        register_step_kind(PULL_REQUEST)
        register_step_kind(COMMENT)
        register_input_source(ISSUE)

        register_feature(
            Feature("github", "The GitHub connection: issues and pull requests.", github_enabled)
        )
        # /admin/github/ is the admin's index of this app: the page takes another slug.
        register_pages(
            Page(
                "github-issues",
                "GitHub",
                "apps.github.pages.github_page",
                "Builds",
                icon="merge",
                permission="github.view_buildpullrequest",
                order=310,
            ),
        )
