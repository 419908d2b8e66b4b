"""Reads: the GitHub settings, and GitHub's own data (the user, a repository, issues, pull
requests) through the connection they describe.

What GitHub answers is published as plain dicts of the fields the platform names (the
``api/serializers.py`` output serializers list them); lists carry GitHub's pagination, read
from its ``Link`` header.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from githubkit.response import Response
from rest_framework import status

from apps.core.crypto import decrypt

from .client import Connection, GitHubError, call
from .models import BuildPullRequest, GitHubSettings


def github_settings_get() -> GitHubSettings:
    """The stored row, or the defaults (unsaved) when none is stored yet."""
    return GitHubSettings.objects.first() or GitHubSettings()


def github_enabled() -> bool:
    return GitHubSettings.objects.filter(enabled=True).exists()


def github_api_url(row: GitHubSettings) -> str:
    return row.api_url or settings.GITHUB_API_URL


def github_connection() -> Connection:
    """The connection to call through; a 409 ``github_disabled`` when it is off or lacks a token
    (a state an admin changes, not a fault of the server)."""
    row = github_settings_get()
    if not row.enabled:
        raise GitHubError(
            "github_disabled",
            "The GitHub connection is disabled; an admin enables it in the GitHub settings.",
            status.HTTP_409_CONFLICT,
        )
    try:
        token = decrypt(row.token_encrypted)
    except ValueError:
        token = ""
    if not token:
        raise GitHubError(
            "github_disabled",
            "The GitHub connection has no usable token; an admin sets one in the GitHub settings.",
            status.HTTP_409_CONFLICT,
        )
    return Connection(token=token, api_url=github_api_url(row))


def github_default_repo() -> tuple[str, str]:
    row = github_settings_get()
    if not (row.owner and row.repo):
        raise GitHubError(
            "github_no_default_repo",
            "No default repository is set; name one (repos/{owner}/{repo}/...) or set the "
            "default owner and repository in the GitHub settings.",
            status.HTTP_400_BAD_REQUEST,
        )
    return row.owner, row.repo


# --- shapes --------------------------------------------------------------------------------------


def _user(data: dict[str, Any] | None) -> dict[str, Any] | None:
    if not data:
        return None
    return {"login": data.get("login"), "id": data.get("id"), "html_url": data.get("html_url")}


def _labels(data: list[Any] | None) -> list[str]:
    return [label["name"] if isinstance(label, dict) else str(label) for label in data or ()]


def issue_shape(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "number": data.get("number"),
        "title": data.get("title"),
        "body": data.get("body") or "",
        "state": data.get("state"),
        "state_reason": data.get("state_reason"),
        "labels": _labels(data.get("labels")),
        "assignees": [_user(user)["login"] for user in data.get("assignees") or () if user],  # type: ignore[index]
        "user": _user(data.get("user")),
        "comments": data.get("comments", 0),
        "is_pull_request": "pull_request" in data,
        "html_url": data.get("html_url"),
        "created_at": data.get("created_at"),
        "updated_at": data.get("updated_at"),
        "closed_at": data.get("closed_at"),
    }


def comment_shape(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": data.get("id"),
        "body": data.get("body") or "",
        "user": _user(data.get("user")),
        "html_url": data.get("html_url"),
        "created_at": data.get("created_at"),
    }


def pull_shape(data: dict[str, Any]) -> dict[str, Any]:
    head, base = data.get("head") or {}, data.get("base") or {}
    return {
        "number": data.get("number"),
        "title": data.get("title"),
        "body": data.get("body") or "",
        "state": data.get("state"),
        "draft": bool(data.get("draft")),
        "merged": bool(data.get("merged") or data.get("merged_at")),
        "head": head.get("ref"),
        "base": base.get("ref"),
        "user": _user(data.get("user")),
        "html_url": data.get("html_url"),
        "created_at": data.get("created_at"),
        "updated_at": data.get("updated_at"),
        "merged_at": data.get("merged_at"),
        "closed_at": data.get("closed_at"),
    }


def repo_shape(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "full_name": data.get("full_name"),
        "name": data.get("name"),
        "owner": (data.get("owner") or {}).get("login"),
        "private": bool(data.get("private")),
        "description": data.get("description") or "",
        "default_branch": data.get("default_branch"),
        "html_url": data.get("html_url"),
        "open_issues_count": data.get("open_issues_count", 0),
    }


def _page_number(url: str | None) -> int | None:
    if not url:
        return None
    from urllib.parse import parse_qs, urlsplit

    values = parse_qs(urlsplit(url).query).get("page")
    return int(values[0]) if values and values[0].isdigit() else None


def _paged(response: Response, page: int, per_page: int, shape: Any) -> dict[str, Any]:
    links = response.raw_response.links
    return {
        "page": page,
        "per_page": per_page,
        "next_page": _page_number(links.get("next", {}).get("url")),
        "prev_page": _page_number(links.get("prev", {}).get("url")),
        "last_page": _page_number(links.get("last", {}).get("url")),
        "results": [shape(item) for item in response.json()],
    }


# --- GitHub's data ---------------------------------------------------------------------------


def github_connection_test() -> dict[str, Any]:
    """Who the token belongs to, its scopes (classic tokens) and the rate limit left; a failure
    raises ``GitHubError`` saying exactly what failed."""
    connection = github_connection()
    response = call(connection, lambda github: github.rest.users.get_authenticated())
    scopes = response.headers.get("x-oauth-scopes")
    user = response.json()
    reset = response.headers.get("x-ratelimit-reset")
    return {
        "login": user.get("login"),
        "name": user.get("name") or "",
        "scopes": [scope.strip() for scope in scopes.split(",") if scope.strip()]
        if scopes is not None
        else None,
        "rate_limit": {
            "limit": int(response.headers.get("x-ratelimit-limit", 0)),
            "remaining": int(response.headers.get("x-ratelimit-remaining", 0)),
            "reset": int(reset) if reset and reset.isdigit() else None,
        },
        "api_url": connection.api_url,
    }


def github_user() -> dict[str, Any]:
    data = call(github_connection(), lambda github: github.rest.users.get_authenticated()).json()
    return {**_user(data), "name": data.get("name") or "", "type": data.get("type")}  # type: ignore[dict-item]


def github_repo(*, owner: str, repo: str) -> dict[str, Any]:
    return repo_shape(
        call(github_connection(), lambda github: github.rest.repos.get(owner, repo)).json()
    )


def github_issue_list(
    *, owner: str, repo: str, page: int = 1, per_page: int = 30, **filters: Any
) -> dict[str, Any]:
    """Issues (GitHub counts pull requests as issues: ``is_pull_request`` tells them); filters:
    state, labels (comma-separated), assignee, creator, mentioned, milestone, since, sort,
    direction."""
    wanted = {name: value for name, value in filters.items() if value not in (None, "")}
    response = call(
        github_connection(),
        lambda github: github.rest.issues.list_for_repo(
            owner, repo, page=page, per_page=per_page, **wanted
        ),
    )
    return _paged(response, page, per_page, issue_shape)


def github_issue_get(*, owner: str, repo: str, number: int) -> dict[str, Any]:
    response = call(github_connection(), lambda github: github.rest.issues.get(owner, repo, number))
    return issue_shape(response.json())


def github_pull_list(
    *, owner: str, repo: str, page: int = 1, per_page: int = 30, **filters: Any
) -> dict[str, Any]:
    wanted = {name: value for name, value in filters.items() if value not in (None, "")}
    response = call(
        github_connection(),
        lambda github: github.rest.pulls.list(owner, repo, page=page, per_page=per_page, **wanted),
    )
    return _paged(response, page, per_page, pull_shape)


def github_pull_get(*, owner: str, repo: str, number: int) -> dict[str, Any]:
    response = call(github_connection(), lambda github: github.rest.pulls.get(owner, repo, number))
    return pull_shape(response.json())


def github_issue_comments(*, owner: str, repo: str, number: int) -> list[dict[str, Any]]:
    """The issue's first 100 comments, oldest first."""
    response = call(
        github_connection(),
        lambda github: github.rest.issues.list_comments(owner, repo, number, per_page=100),
    )
    return [comment_shape(item) for item in response.json()]


ISSUE_REFERENCE = re.compile(
    r"(?:(?P<owner>[A-Za-z0-9_.-]{1,100})/(?P<repo>[A-Za-z0-9_.-]{1,100}))?#(?P<number>[0-9]{1,10})"
)


def github_issue_reference_parse(reference: str) -> tuple[str, str, int]:
    """``owner/repo#123`` (or ``#123``: the default repository) as (owner, repo, number); a
    ``ValidationError`` on another form, a 400 ``github_no_default_repo`` for ``#123`` without
    a default repository."""
    match = ISSUE_REFERENCE.fullmatch(reference.strip()) if isinstance(reference, str) else None
    if match is None or int(match["number"]) == 0:
        raise ValidationError(
            {"github_issue": "An issue as owner/repo#123, or #123 in the default repository."}
        )
    owner, repo = (match["owner"], match["repo"]) if match["owner"] else github_default_repo()
    return owner, repo, int(match["number"])


def github_issue_as_input(*, owner: str, repo: str, number: int) -> dict[str, Any]:
    """The issue as a build's input: ``reference``, ``title`` and ``text`` (its title, state,
    link, body and comments, laid out in Markdown)."""
    issue = github_issue_get(owner=owner, repo=repo, number=number)
    comments = (
        github_issue_comments(owner=owner, repo=repo, number=number) if issue["comments"] else []
    )
    reference = f"{owner}/{repo}#{number}"
    author = (issue["user"] or {}).get("login") or "someone"
    parts = [
        f"# {issue['title']}",
        f"GitHub issue {reference} ({issue['state']}), opened by {author}: {issue['html_url']}",
        issue["body"].strip() or "(no description)",
    ]
    if comments:
        parts.append(f"## Comments ({len(comments)})")
        for comment in comments:
            who = (comment["user"] or {}).get("login") or "someone"
            parts.append(f"### {who}, {comment['created_at']}\n\n{comment['body'].strip()}")
    return {"reference": reference, "title": issue["title"], "text": "\n\n".join(parts) + "\n"}


def github_file_get(*, owner: str, repo: str, path: str, ref: str) -> tuple[str, str] | None:
    """A file's text and blob sha at ``ref``, or None when there is no such file."""
    try:
        response = call(
            github_connection(),
            lambda github: github.rest.repos.get_content(owner, repo, path, ref=ref),
        )
    except GitHubError as error:
        if error.status_code == status.HTTP_404_NOT_FOUND:
            return None
        raise
    data = response.json()
    if not isinstance(data, dict) or data.get("type") != "file":
        raise GitHubError(
            "github_not_a_file",
            f"{path} is not a file in {owner}/{repo} at {ref}.",
            status.HTTP_409_CONFLICT,
        )
    text = base64.b64decode(data.get("content") or "").decode("utf-8", errors="replace")
    return text, str(data.get("sha"))


def github_branch_sha(*, owner: str, repo: str, branch: str) -> str:
    response = call(
        github_connection(),
        lambda github: github.rest.git.get_ref(owner, repo, f"heads/{branch}"),
    )
    return str(response.json()["object"]["sha"])


# --- the pull requests builds opened -------------------------------------------------------------


def build_pull_request_list(*, build_id: int | None = None) -> QuerySet[BuildPullRequest]:
    """The pull requests builds opened, newest first (those of one build with ``build_id``)."""
    found = BuildPullRequest.objects.select_related("build", "step")
    return found.filter(build_id=build_id) if build_id is not None else found


def build_pull_request_get(*, pk: int) -> BuildPullRequest:
    return get_object_or_404(build_pull_request_list(), pk=pk)
