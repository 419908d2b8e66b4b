"""The GitHub page (``/admin/github-issues/``) against the fake GitHub: the connection's state,
the default repository's open issues, a build started from one by an operator (a viewer's
forged POST refused), the pull requests builds opened, and GitHub's failures shown as
messages on a page that still answers."""

from __future__ import annotations

import time

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apps.accounts.models import Role
from apps.builds.models import Build
from apps.builds.services import build_create, build_template_create
from apps.github.models import BuildPullRequest, PullState
from apps.github.services import github_settings_update
from tests.dashboard.conftest import member
from tests.github.conftest import REPO, TOKEN, signed_in

pytestmark = pytest.mark.django_db

PAGE = "/admin/github-issues/"
STEPS = [{"name": "implement", "model": "chat", "prompt": "Fix this issue:\n{input}"}]


@pytest.fixture
def template(two_providers):
    return build_template_create(by=None, name="fix an issue", steps=STEPS)


def text(answer) -> str:
    return answer.content.decode()


def test_anonymous_people_are_sent_to_log_in():
    answer = Client().get(PAGE)
    assert answer.status_code == 302
    assert answer["Location"].startswith("/admin/login/")


def test_a_viewer_sees_the_connection_and_the_issues_without_the_action(issues, template):
    answer = signed_in(Role.VIEWER).get(PAGE)

    assert answer.status_code == 200
    page = text(answer)
    assert 'data-state="ok"' in page
    assert "Connected as <strong>octocat</strong>" in page
    assert "<code>acme/gears</code>" in page
    assert "#1 The home page has no route" in page and "#2 The about page is blank" in page
    assert f'href="https://github.com/{REPO}/issues/2"' in page
    assert "Start a build from this issue" not in page
    assert 'name="template"' not in page
    assert "needs the operator or admin role" in page
    assert "GitHub settings</a>" not in page  # the settings are for admins
    assert TOKEN not in page
    assert [r.query.get("state") for r in issues.requests if r.path.endswith("/issues")] == [
        ["open"]
    ]


def test_the_page_is_in_the_sidebar_and_admins_get_the_settings_link(issues, template):
    page = text(signed_in(Role.ADMIN).get("/admin/"))
    assert f'href="{PAGE}"' in page

    page = text(signed_in(Role.ADMIN).get(PAGE))
    assert 'href="/admin/github/githubsettings/"' in page
    assert 'href="/admin/github/buildpullrequest/"' in page


def test_an_operator_starts_a_build_from_an_issue(issues, template):
    olga = member(Role.OPERATOR, username="olga")
    operator = Client()
    operator.force_login(olga)
    page = text(operator.get(PAGE))
    assert page.count("Start a build from this issue") == 2
    assert f'<option value="{template.pk}">fix an issue</option>' in page

    answer = operator.post(PAGE, {"issue": f"{REPO}#2", "template": template.pk})

    build = Build.objects.get()
    assert answer.status_code == 302
    assert answer["Location"] == f"/admin/build/{build.pk}/"
    assert build.github_issue == f"{REPO}#2"
    assert build.title == "The about page is blank"
    assert "Nothing renders on /about." in build.input
    assert list(build.steps.values_list("name", flat=True)) == ["implement"]
    assert build.created_by == olga
    shown = text(operator.get(answer["Location"]))
    assert f"Build #{build.pk} started from {REPO}#2" in shown


def test_a_viewers_forged_post_is_refused(issues, template):
    viewer = signed_in(Role.VIEWER)
    answer = viewer.post(PAGE, {"issue": f"{REPO}#1", "template": template.pk})
    assert answer.status_code == 403
    assert not Build.objects.exists()


@pytest.mark.parametrize(
    ("form", "said"),
    [
        ({"issue": f"{REPO}#99"}, "GitHub has no such resource"),
        ({"issue": "not an issue"}, "An issue as owner/repo#123"),
        ({"issue": f"{REPO}#1", "template": "999999"}, "template: Select a valid choice"),
        ({"template": None}, "issue: This field is required"),
    ],
)
def test_a_start_that_fails_says_why_on_the_page(issues, template, form, said):
    operator = signed_in(Role.OPERATOR)
    data = {"template": template.pk, **form}
    answer = operator.post(PAGE, {k: v for k, v in data.items() if v is not None}, follow=True)
    assert answer.status_code == 200
    assert answer.redirect_chain == [(PAGE, 302)]
    assert "The build was not started: " in text(answer)
    assert said in text(answer)
    assert not Build.objects.exists()


def test_no_template_yet_says_how_to_make_one(issues, two_providers):
    page = text(signed_in(Role.OPERATOR).get(PAGE))
    assert "there is none yet" in page and 'href="/admin/builds/buildtemplate/add/"' in page
    assert "Start a build from this issue" not in page


def test_a_disabled_connection_shows_the_message_and_asks_github_nothing(issues, template):
    github_settings_update(enabled=False)
    issues.requests.clear()

    answer = signed_in(Role.OPERATOR).get(PAGE)

    assert answer.status_code == 200
    page = text(answer)
    assert 'data-state="disabled"' in page
    assert "The GitHub connection is disabled." in page
    assert "Open issues" not in page and "Start a build" not in page
    assert issues.requests == []


def test_a_refused_token_shows_githubs_error(issues, template):
    issues.fail_next(401, {"message": "Bad credentials"})
    answer = signed_in(Role.VIEWER).get(PAGE)
    assert answer.status_code == 200
    page = text(answer)
    assert 'data-state="error"' in page
    assert "GitHub refused the token (401: Bad credentials)" in page
    assert TOKEN not in page


def test_a_spent_rate_limit_is_a_message(issues, template):
    reset = int(time.time()) + 600
    issues.fail_next(
        403,
        {"message": "API rate limit exceeded for user ID 1."},
        {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)},
    )
    answer = signed_in(Role.OPERATOR).get(PAGE)
    assert answer.status_code == 200
    page = text(answer)
    assert 'data-state="error"' in page
    assert "rate limit is spent; retry in" in page
    assert "Start a build" not in page


def test_a_default_repository_github_lacks_is_a_message_above_the_issues(issues, template):
    github_settings_update(repo="nothing-here")
    answer = signed_in(Role.OPERATOR).get(PAGE)
    assert answer.status_code == 200
    page = text(answer)
    assert 'data-state="ok"' in page
    assert 'id="github-issues-error"' in page and "GitHub has no such resource" in page
    assert "Start a build" not in page


def pull_request(build: Build, number: int, state: str = PullState.OPEN) -> BuildPullRequest:
    return BuildPullRequest.objects.create(
        build=build,
        repository=REPO,
        number=number,
        url=f"https://github.com/{REPO}/pull/{number}",
        title=build.title,
        state=state,
        head_branch=f"orchestra/build-{build.pk}",
        base_branch="main",
    )


def builds_with_pulls(count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        build = build_create(title=f"Fix {i}", input="x", steps=STEPS, by=None)
        pull_request(build, 100 + i, PullState.MERGED if i % 2 else PullState.OPEN)


def test_the_pull_requests_builds_opened_newest_first_in_bounded_queries(two_providers):
    viewer = signed_in(Role.VIEWER)
    page = text(viewer.get(PAGE))
    assert "No build has opened a pull request yet" in page

    builds_with_pulls(2)
    with CaptureQueriesContext(connection) as few:
        page = text(viewer.get(PAGE))
    first, second = (Build.objects.get(title=f"Fix {i}") for i in (0, 1))
    assert page.index(f"{REPO}#101") < page.index(f"{REPO}#100")  # newest first
    assert f'href="https://github.com/{REPO}/pull/101"' in page
    assert f'href="/admin/build/{first.pk}/"' in page and f"#{second.pk} Fix 1" in page
    assert ">Merged</span>" in page and ">Open</span>" in page

    builds_with_pulls(30, start=2)
    with CaptureQueriesContext(connection) as many:
        page = text(viewer.get(PAGE))
    assert len(many) == len(few)
    assert f"{REPO}#131" in page and f"{REPO}#100" not in page  # 25 a page
    assert 'href="?pulls=2"' in page
    assert f"{REPO}#100" in text(viewer.get(PAGE + "?pulls=2"))
