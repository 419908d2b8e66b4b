"""What the GitHub app adds to builds (registered by ``GitHubConfig.ready()``): the input source
``github_issue`` and the step kinds that publish a build, ``github_pull_request`` (its patches as
a pull request) and ``github_comment`` (its report as a comment on the issue)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError

from apps.builds.plugins import InputSource, ResolvedInput, StepContext, StepKind, StepResult

from .selectors import ISSUE_REFERENCE
from .services import (
    github_issue_input_resolve,
    github_publish_comment,
    github_publish_pull_request,
)

REPOSITORY = re.compile(r"[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}")
BRANCH = re.compile(r"[A-Za-z0-9_./-]{1,255}")
MAX_LABELS = 20


def _unknown(options: Mapping[str, Any], known: set[str]) -> None:
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValidationError({"options": f"Unknown option {', '.join(unknown)}."})


def pull_request_options_validate(options: Mapping[str, Any]) -> None:
    """``title`` (text), ``labels`` (names), ``base`` (a branch; the default branch when left
    out), ``repository`` (owner/repo; the issue's, or the default one), ``draft`` (bool)."""
    _unknown(options, {"title", "labels", "base", "repository", "draft"})
    title = options.get("title", "")
    if not isinstance(title, str) or len(title) > 256:
        raise ValidationError({"options": "title: text of at most 256 characters."})
    labels = options.get("labels", [])
    if (
        not isinstance(labels, list)
        or len(labels) > MAX_LABELS
        or not all(isinstance(label, str) and 0 < len(label) <= 50 for label in labels)
    ):
        raise ValidationError({"options": f"labels: at most {MAX_LABELS} names of 1-50 chars."})
    base = options.get("base", "")
    if not isinstance(base, str) or (base and not BRANCH.fullmatch(base)):
        raise ValidationError({"options": "base: a branch name."})
    repository = options.get("repository", "")
    if not isinstance(repository, str) or (repository and not REPOSITORY.fullmatch(repository)):
        raise ValidationError({"options": "repository: owner/repo."})
    if not isinstance(options.get("draft", False), bool):
        raise ValidationError({"options": "draft: true or false."})


def comment_options_validate(options: Mapping[str, Any]) -> None:
    """``issue``: owner/repo#123 or #123 (the build's issue when left out)."""
    _unknown(options, {"issue"})
    issue = options.get("issue", "")
    if not isinstance(issue, str) or (issue and not ISSUE_REFERENCE.fullmatch(issue)):
        raise ValidationError({"options": "issue: owner/repo#123 or #123."})


def pull_request_run(context: StepContext) -> StepResult:
    done = github_publish_pull_request(
        build=context.build, step=context.step, text=context.text, options=context.options
    )
    return StepResult(output=done["output"], url=done["url"])


def comment_run(context: StepContext) -> StepResult:
    done = github_publish_comment(build=context.build, text=context.text, options=context.options)
    return StepResult(output=done["output"], url=done["url"])


def issue_resolve(reference: str) -> ResolvedInput:
    found = github_issue_input_resolve(reference)
    return ResolvedInput(reference=found["reference"], text=found["text"], title=found["title"])


PULL_REQUEST = StepKind(
    "github_pull_request",
    "The build's patches on a new branch, opened as a pull request.",
    pull_request_run,
    pull_request_options_validate,
)
COMMENT = StepKind(
    "github_comment",
    "The step's text (the previous step's output) posted as a comment on the build's issue.",
    comment_run,
    comment_options_validate,
)
ISSUE = InputSource(
    "github_issue", "A GitHub issue's title, body and comments (owner/repo#123).", issue_resolve
)
