from celery import shared_task

from .services import github_build_pulls_refresh


@shared_task(name="github.refresh_build_pulls", ignore_result=True)
def refresh_build_pulls() -> int:
    """The state of the open pull requests builds opened (beat)."""
    return github_build_pulls_refresh()
