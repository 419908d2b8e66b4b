"""Reads: the GitHub settings, and GitHub's own data (the user, a repository, issues, pull
requests) through the connection they describe.

What GitHub answers is published as plain dicts of the fields the platform names (the
``api/serializers.py`` output serializers list them); lists carry GitHub's pagination, read
from its ``Link`` header.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from githubkit.response import Response
from rest_framework import status

from apps.core.crypto import decrypt

from .client import Connection, GitHubError, call
from .models import GitHubSettings


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
