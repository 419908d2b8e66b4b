"""Writes: the GitHub settings (and their bootstrap from the environment), and GitHub's issues
and pull requests created, changed, closed and commented on through the connection."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from apps.core.crypto import encrypt
from apps.core.environment import AppliedSettings
from apps.providers.models import validate_header_value

from .client import call
from .models import GitHubSettings
from .selectors import comment_shape, github_connection, issue_shape, pull_shape

UNCHANGED: Any = object()
MAX_TOKEN_LENGTH = 1000
SETTINGS_FIELDS = ("enabled", "owner", "repo", "api_url")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _token_check(token: str) -> None:
    """The token goes in an ``Authorization`` header: one line, of a sane length."""
    try:
        validate_header_value(token)
        if len(token) > MAX_TOKEN_LENGTH:
            raise ValidationError(f"At most {MAX_TOKEN_LENGTH} characters.", code="max_length")
    except ValidationError as error:
        raise ValidationError({"token": error.messages}) from error


@transaction.atomic
def github_settings_update(*, token: Any = UNCHANGED, **fields: Any) -> GitHubSettings:
    """Change the settings; ``token`` left out keeps the stored one, ``""`` removes it."""
    unknown = set(fields) - set(SETTINGS_FIELDS)
    if unknown:
        raise ValidationError({name: "Not a GitHub setting." for name in sorted(unknown)})
    row = GitHubSettings.objects.select_for_update().first() or GitHubSettings()
    for name, value in fields.items():
        setattr(row, name, value)
    row.api_url = row.api_url.rstrip("/")
    if token is not UNCHANGED:
        token = (token or "").strip()
        _token_check(token)
        row.token_encrypted = encrypt(token)
    row.full_clean()
    row.save()
    return row


def _env_bool(value: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ValidationError(
        f"GITHUB_ENABLED: {value!r} is not a boolean (true/false, 1/0, yes/no, on/off)"
    )


ENV_FIELDS = (
    ("GITHUB_ENABLED", "enabled"),
    ("GITHUB_TOKEN", "token"),
    ("GITHUB_OWNER", "owner"),
    ("GITHUB_REPO", "repo"),
)


@transaction.atomic
def github_bootstrap_from_env(*, environ: Mapping[str, str]) -> list[str]:
    """Apply ``GITHUB_ENABLED``, ``GITHUB_TOKEN``, ``GITHUB_OWNER`` and ``GITHUB_REPO`` to the
    settings, each value once (``apps.core.environment``): an admin's later edit stands until
    the variable's value changes. Lines fit to print (never the token)."""
    applied = AppliedSettings()
    changes: dict[str, Any] = {}
    for variable, name in ENV_FIELDS:
        value = (environ.get(variable) or "").strip()
        setting = f"github:{name}"
        if not value:
            applied.forget(setting)
            continue
        if applied.changed(setting, value):
            changes[name] = _env_bool(value) if name == "enabled" else value
        applied.remember(setting, value)
    if not changes:
        return ["github: unchanged"]
    try:
        github_settings_update(**changes)
    except ValidationError as error:
        named = dict((name, variable) for variable, name in ENV_FIELDS)
        problems = error.message_dict if hasattr(error, "error_dict") else {"": error.messages}
        field, messages = next(iter(problems.items()))
        raise ValidationError(f"{named.get(field, 'GITHUB_*')}: {' '.join(messages)}") from None
    return [f"github: {', '.join(f'{name} set' for name in changes)}"]


# --- GitHub's issues and pull requests -----------------------------------------------------------


def github_issue_create(
    *,
    owner: str,
    repo: str,
    title: str,
    body: str = "",
    labels: list[str] | None = None,
    assignees: list[str] | None = None,
) -> dict[str, Any]:
    extra: dict[str, Any] = {"body": body}
    if labels:
        extra["labels"] = labels
    if assignees:
        extra["assignees"] = assignees
    response = call(
        github_connection(),
        lambda github: github.rest.issues.create(owner, repo, title=title, **extra),
    )
    return issue_shape(response.json())


def github_issue_update(*, owner: str, repo: str, number: int, **fields: Any) -> dict[str, Any]:
    """Change what ``fields`` names: title, body, state (open/closed), state_reason, labels,
    assignees."""
    response = call(
        github_connection(),
        lambda github: github.rest.issues.update(owner, repo, number, **fields),
    )
    return issue_shape(response.json())


def github_issue_close(
    *, owner: str, repo: str, number: int, reason: str = "completed"
) -> dict[str, Any]:
    return github_issue_update(
        owner=owner, repo=repo, number=number, state="closed", state_reason=reason
    )


def github_issue_comment(*, owner: str, repo: str, number: int, body: str) -> dict[str, Any]:
    response = call(
        github_connection(),
        lambda github: github.rest.issues.create_comment(owner, repo, number, body=body),
    )
    return comment_shape(response.json())


def github_pull_create(
    *,
    owner: str,
    repo: str,
    title: str,
    head: str,
    base: str,
    body: str = "",
    draft: bool = False,
) -> dict[str, Any]:
    response = call(
        github_connection(),
        lambda github: github.rest.pulls.create(
            owner, repo, title=title, head=head, base=base, body=body, draft=draft
        ),
    )
    return pull_shape(response.json())
