"""``/api/v1/github/...``, and the same views at ``/api/github/...`` (``legacy_urlpatterns``,
mounted by ``orchestra/urls.py``; left out of the schema, which documents each view once)."""

from typing import Any

from django.urls import URLPattern, include, path, re_path
from rest_framework.views import APIView

from . import views

REPO = r"repos/(?P<owner>[A-Za-z0-9_.-]{1,100})/(?P<repo>[A-Za-z0-9_.-]{1,100})"
NUMBER = r"(?P<number>[0-9]{1,10})"


def _github_urls(name: str, **initkwargs: Any) -> list[URLPattern]:
    def view(cls: type[APIView]) -> Any:
        return cls.as_view(**initkwargs)

    def repo_urls(prefix: str, kind: str) -> list[URLPattern]:
        return [
            re_path(rf"^{prefix}issues$", view(views.IssueListCreateApi),
                    name=f"{name}{kind}issue-list"),
            re_path(rf"^{prefix}issues/{NUMBER}$", view(views.IssueDetailApi),
                    name=f"{name}{kind}issue-detail"),
            re_path(rf"^{prefix}issues/{NUMBER}/close$", view(views.IssueCloseApi),
                    name=f"{name}{kind}issue-close"),
            re_path(rf"^{prefix}issues/{NUMBER}/comments$", view(views.IssueCommentApi),
                    name=f"{name}{kind}issue-comment"),
            re_path(rf"^{prefix}pulls$", view(views.PullListCreateApi),
                    name=f"{name}{kind}pull-list"),
            re_path(rf"^{prefix}pulls/{NUMBER}$", view(views.PullDetailApi),
                    name=f"{name}{kind}pull-detail"),
        ]  # fmt: skip

    return [
        path("settings", view(views.SettingsApi), name=f"{name}settings"),
        path("settings/test", view(views.SettingsTestApi), name=f"{name}settings-test"),
        path("user", view(views.UserApi), name=f"{name}user"),
        path("build-pulls", view(views.BuildPullRequestListApi), name=f"{name}build-pulls"),
        re_path(rf"^{REPO}$", view(views.RepoApi), name=f"{name}repo"),
        *repo_urls(f"{REPO}/", "repo-"),
        *repo_urls("", ""),
    ]


urlpatterns = [path("github/", include(_github_urls("github-")))]
legacy_urlpatterns = [path("github/", include(_github_urls("github-legacy-", schema=None)))]
