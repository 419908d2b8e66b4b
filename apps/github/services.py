"""Writes: the GitHub settings (and their bootstrap from the environment), GitHub's issues and
pull requests created, changed, closed and commented on through the connection, and builds meeting
GitHub: a build started from an issue, its patches published as a pull request or its report as
a comment (the builds' step kinds ``github_pull_request`` and ``github_comment``, ``steps.py``),
and the state of those pull requests refreshed."""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from githubkit import GitHub
from githubkit.response import Response
from githubkit.utils import UNSET

from apps.artifacts.selectors import artifact_list
from apps.builds.plugins import StepFailedError
from apps.builds.services import build_create, build_create_from_template
from apps.core.crypto import encrypt
from apps.core.environment import AppliedSettings
from apps.providers.models import validate_header_value

from .client import GitHubError, call
from .models import BuildPullRequest, GitHubSettings, PullState
from .patching import PatchError, patches_apply
from .selectors import (
    comment_shape,
    github_branch_sha,
    github_connection,
    github_default_repo,
    github_enabled,
    github_file_get,
    github_issue_as_input,
    github_issue_reference_parse,
    github_pull_get,
    github_repo,
    issue_shape,
    pull_shape,
)

logger = logging.getLogger(__name__)

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


# --- builds meet GitHub --------------------------------------------------------------------------


def build_start_from_issue(
    *,
    github_issue: str,
    by: User | None,
    steps: Any = None,
    template: Any = None,
    title: str = "",
    input: str = "",
) -> Any:
    """Start a build whose input is a GitHub issue (``owner/repo#123`` or ``#123``): its
    ``steps`` or a ``template`` (a ``builds.BuildTemplate``); see ``build_create``."""
    if template is not None:
        return build_create_from_template(
            template=template, by=by, input=input, title=title, github_issue=github_issue
        )
    return build_create(title=title, steps=steps, by=by, input=input, github_issue=github_issue)


def github_issue_input_resolve(reference: str) -> dict[str, Any]:
    """What the builds' ``github_issue`` input source answers (see ``github_issue_as_input``)."""
    owner, repo, number = github_issue_reference_parse(reference)
    return github_issue_as_input(owner=owner, repo=repo, number=number)


def _repository(value: str) -> tuple[str, str]:
    owner, _, repo = value.partition("/")
    return owner, repo


def _build_link(build: Any) -> str:
    return f"{settings.PLATFORM_URL}/admin/build/{build.pk}/"


def _footer(build: Any) -> str:
    return f"\n\n---\nMade by [AI Orchestra build #{build.pk}]({_build_link(build)}): {build.title}"


def _publish_repository(build: Any, options: Mapping[str, Any]) -> tuple[str, str]:
    if options.get("repository"):
        return _repository(options["repository"])
    if build.github_issue:
        owner, repo, _ = github_issue_reference_parse(build.github_issue)
        return owner, repo
    return github_default_repo()


def _build_patches(build: Any, step: Any) -> list[tuple[str, str]]:
    patches = (
        artifact_list()
        .filter(build_id=build.pk, kind="patch", step__position__lt=step.position)
        .order_by("step__position", "id")
    )
    return [(patch.name, patch.content) for patch in patches]


def _branch_create(owner: str, repo: str, name: str, sha: str) -> str:
    """Create ``name`` (or ``name-2``, ``-3``... if taken: a retried build) at ``sha``."""
    connection = github_connection()
    for attempt in range(1, 11):
        branch = name if attempt == 1 else f"{name}-{attempt}"

        def create(github: GitHub, ref: str = f"refs/heads/{branch}") -> Response:
            return github.rest.git.create_ref(owner, repo, ref=ref, sha=sha)

        try:
            call(connection, create)
            return branch
        except GitHubError as error:
            if "already exists" not in str(error.detail):
                raise
    raise StepFailedError(f"The branches {name} to {name}-10 exist already in {owner}/{repo}.")


def _file_write(
    owner: str,
    repo: str,
    branch: str,
    path: str,
    content: str | None,
    sha: str | None,
    message: str,
) -> None:
    """One commit on ``branch``: ``path`` written (``content``) or deleted (None); ``sha`` is
    the blob it replaces."""

    def write(github: GitHub) -> Response:
        if content is None:
            return github.rest.repos.delete_file(
                owner, repo, path, message=message, sha=sha or "", branch=branch
            )
        encoded = base64.b64encode(content.encode("utf-8")).decode("ascii")
        return github.rest.repos.create_or_update_file_contents(
            owner, repo, path, message=message, content=encoded, branch=branch, sha=sha or UNSET
        )

    call(github_connection(), write)


def github_publish_pull_request(
    *, build: Any, step: Any, text: str, options: Mapping[str, Any]
) -> dict[str, Any]:
    """Apply the patches of the build's earlier steps to a new branch (``orchestra/build-<id>``)
    from the base (the repository's default branch unless ``options["base"]``) and open a pull
    request of it: its title the build's (or ``options["title"]``), its body ``text`` and a link
    back to the build, with ``options["labels"]``. Every patch is applied in memory first: one
    that does not apply raises ``StepFailedError`` before anything is written. Returns
    ``output`` and ``url`` for the step; a step that opened one already returns it again."""
    done = BuildPullRequest.objects.filter(step_id=step.pk).first()
    if done is not None:
        return _published(done, [])
    patches = _build_patches(build, step)
    if not patches:
        raise StepFailedError("The build made no patch to publish; nothing was published.")
    owner, repo = _publish_repository(build, options)
    base = options.get("base") or github_repo(owner=owner, repo=repo)["default_branch"]
    base_sha = github_branch_sha(owner=owner, repo=repo, branch=base)
    shas: dict[str, str] = {}

    def read(path: str) -> str | None:
        found = github_file_get(owner=owner, repo=repo, path=path, ref=base_sha)
        if found is None:
            return None
        shas[path] = found[1]
        return found[0]

    try:
        changed = patches_apply(patches, read)
    except PatchError as error:
        raise StepFailedError(f"A patch does not apply: {error}. Nothing was published.") from None
    branch = _branch_create(owner, repo, f"orchestra/build-{build.pk}", base_sha)
    for path, content in changed.items():
        action = "delete" if content is None else "update"
        _file_write(
            owner,
            repo,
            branch,
            path,
            content,
            shas.get(path),
            f"Build #{build.pk}: {action} {path}",
        )
    body = text.strip()
    if build.github_issue and build.github_issue.startswith(f"{owner}/{repo}#"):
        body += f"\n\nCloses {build.github_issue}."
    title = (options.get("title") or build.title)[:256]
    pull = github_pull_create(
        owner=owner,
        repo=repo,
        title=title,
        head=branch,
        base=base,
        body=body + _footer(build),
        draft=bool(options.get("draft")),
    )
    labels = list(options.get("labels") or [])
    if labels:
        call(
            github_connection(),
            lambda github: github.rest.issues.add_labels(
                owner, repo, pull["number"], labels=labels
            ),
        )
    record = BuildPullRequest.objects.create(
        build_id=build.pk,
        step_id=step.pk,
        repository=f"{owner}/{repo}",
        number=pull["number"],
        url=pull["html_url"],
        title=title,
        head_branch=branch,
        base_branch=base,
        refreshed_at=timezone.now(),
    )
    return _published(record, sorted(changed))


def _published(record: BuildPullRequest, paths: list[str]) -> dict[str, Any]:
    files = "".join(f"\n- `{path}`" for path in paths)
    output = (
        f"Opened pull request [{record.repository}#{record.number}]({record.url}) from "
        f"`{record.head_branch}` into `{record.base_branch}`"
        + (
            f", changing {len(paths)} file{'s' if len(paths) != 1 else ''}:\n{files}"
            if paths
            else "."
        )
    )
    return {"output": output, "url": record.url}


def github_publish_comment(*, build: Any, text: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Post ``text`` (with a link back to the build) on the build's issue, or on
    ``options["issue"]``. Returns ``output`` and ``url`` for the step."""
    reference = options.get("issue") or build.github_issue
    if not reference:
        raise StepFailedError(
            "The build was not started from an issue and the step names none (options.issue)."
        )
    owner, repo, number = github_issue_reference_parse(reference)
    comment = github_issue_comment(
        owner=owner, repo=repo, number=number, body=text.strip() + _footer(build)
    )
    return {
        "output": f"Commented on [{owner}/{repo}#{number}]({comment['html_url']}).",
        "url": comment["html_url"],
    }


def github_build_pulls_refresh() -> int:
    """Ask GitHub for the state of every open pull request builds opened; return how many
    changed. Nothing is asked while the connection is off; one that fails is left for the next
    run (logged)."""
    if not github_enabled():
        return 0
    changed = 0
    for record in BuildPullRequest.objects.filter(state=PullState.OPEN).order_by("id"):
        owner, repo = _repository(record.repository)
        try:
            pull = github_pull_get(owner=owner, repo=repo, number=record.number)
        except GitHubError as error:
            logger.warning("pull request %s not refreshed: %s", record, error.detail)
            continue
        state = (
            PullState.MERGED
            if pull["merged"]
            else PullState.CLOSED
            if pull["state"] == "closed"
            else PullState.OPEN
        )
        changed += state != record.state
        record.state = state
        record.refreshed_at = timezone.now()
        record.save(update_fields=["state", "refreshed_at"])
    return changed
