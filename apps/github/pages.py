"""The GitHub page: the connection's state, the default repository's open issues (each of which
an operator may start a build from, with a template) and the pull requests builds opened.

Starting a build is a form POST to this page that calls ``build_start_from_issue`` (the service
behind the builds API's ``github_issue``) and goes to the new build's page. GitHub's failures
(the connection off, a refused token, a spent rate limit) are shown on the page as messages;
the page itself always answers.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.dateparse import parse_datetime

from apps.accounts.permissions import OPERATE
from apps.builds.selectors import template_list
from apps.core.admin_support import acting_user, refusal

from .client import GitHubError
from .models import MANAGE_PERMISSION, PullState
from .selectors import (
    build_pull_request_list,
    github_api_url,
    github_connection_test,
    github_issue_list,
    github_settings_get,
)
from .services import build_start_from_issue

ISSUES_PER_PAGE = 25
PULLS_PER_PAGE = 25
MAX_PAGE = 1000
# A pull request's state as a pill's tone (dashboard.css colours pills by data-status).
PULL_TONES: dict[str, str] = {
    PullState.OPEN: "info",
    PullState.MERGED: "success",
    PullState.CLOSED: "disabled",
}


class IssueBuildForm(forms.Form):
    """Start a build from an issue: which issue (``owner/repo#123``) and which template."""

    issue = forms.CharField(max_length=220)
    template = forms.ModelChoiceField(queryset=template_list(), empty_label=None)


def _page_number(value: str | None) -> int:
    try:
        number = int(value or 1)
    except ValueError:
        return 1
    return min(max(number, 1), MAX_PAGE)


def github_page(request: HttpRequest) -> HttpResponse:
    """``GET``: the page (``?page=`` pages the issues, ``?pulls=`` the pull requests);
    ``POST``: start a build from an issue (operators and admins)."""
    if request.method == "POST":
        return _start(request)
    return TemplateResponse(request, "github/github.html", _context(request))


def _start(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm(OPERATE):
        raise PermissionDenied("Starting a build needs the operator role.")
    back = reverse("admin:page-github-issues")
    form = IssueBuildForm(request.POST)
    if not form.is_valid():
        problems = [
            f"{name}: {' '.join(str(error) for error in errors)}"
            for name, errors in form.errors.items()
        ]
        messages.error(request, "The build was not started: " + "; ".join(problems))
        return HttpResponseRedirect(back)
    reference = form.cleaned_data["issue"]
    try:
        build = build_start_from_issue(
            github_issue=reference,
            template=form.cleaned_data["template"],
            by=acting_user(request),
        )
    except GitHubError as error:
        messages.error(request, f"The build was not started: {error.detail}")
        return HttpResponseRedirect(back)
    except ValidationError as error:
        messages.error(request, f"The build was not started: {refusal(error)}")
        return HttpResponseRedirect(back)
    messages.success(request, f"Build #{build.pk} started from {reference}: {build.title}")
    return HttpResponseRedirect(reverse("admin:page-build-1", args=[build.pk]))


def _connection(row: Any) -> dict[str, Any]:
    """``state`` (``disabled``, ``error``, ``ok``) and what goes with it; one call to GitHub
    when the connection is on."""
    if not row.enabled:
        return {"state": "disabled", "message": "The GitHub connection is disabled."}
    try:
        test = github_connection_test()
    except GitHubError as error:
        return {"state": "error", "message": str(error.detail)}
    return {
        "state": "ok",
        "login": test["login"],
        "name": test["name"],
        "remaining": test["rate_limit"]["remaining"],
        "limit": test["rate_limit"]["limit"],
    }


def _issues(row: Any, page: int) -> dict[str, Any]:
    """The default repository's open issues (pull requests left out), or why there are none."""
    if not (row.owner and row.repo):
        return {"error": "No default repository is set in the GitHub settings."}
    try:
        found = github_issue_list(
            owner=row.owner, repo=row.repo, page=page, per_page=ISSUES_PER_PAGE, state="open"
        )
    except GitHubError as error:
        return {"error": str(error.detail)}
    return {
        **found,
        "results": [
            {**issue, "updated": parse_datetime(issue["updated_at"] or "")}
            for issue in found["results"]
            if not issue["is_pull_request"]
        ],
    }


def _context(request: HttpRequest) -> dict[str, Any]:
    row = github_settings_get()
    connection = _connection(row)
    can_start = request.user.has_perm(OPERATE)
    issues = (
        _issues(row, _page_number(request.GET.get("page"))) if connection["state"] == "ok" else None
    )
    pulls = Paginator(build_pull_request_list(), PULLS_PER_PAGE).get_page(request.GET.get("pulls"))
    return {
        "connection": connection,
        "settings_row": row,
        "repository": f"{row.owner}/{row.repo}" if row.owner and row.repo else "",
        "api_url": github_api_url(row),
        "can_manage": request.user.has_perm(MANAGE_PERMISSION),
        "issues": issues,
        "can_start": can_start,
        "templates": list(template_list().order_by("name")) if can_start and issues else [],
        "pulls": [
            {"pull": pull, "tone": PULL_TONES.get(pull.state, "")} for pull in pulls.object_list
        ],
        "pulls_page": pulls,
    }
