"""Builds meet GitHub, end to end: a build started from an issue on a real Celery worker (the fake
LLM upstream writes the patches), its approval-gated publish step opening a pull request on the
fake GitHub (reached by the worker over HTTP), or commenting on the issue; a rejected gate or a
patch that does not apply publishes nothing; beat's refresh follows a merge."""

from __future__ import annotations

import pytest
from django.conf import settings

from apps.accounts.models import Role
from apps.approvals.services import approval_decide
from apps.builds.models import Build, BuildStatus, BuildStep, RunStatus
from apps.github.models import BuildPullRequest, PullState
from apps.github.services import build_start_from_issue, github_settings_update
from apps.github.tasks import refresh_build_pulls
from tests.fake_github.server import FakeGitHub
from tests.github.conftest import FILES, REPO, URLS, signed_in
from tests.support.factories import user_create
from tests.support.waiting import eventually

pytestmark = pytest.mark.django_db(transaction=True)

CODE = (
    "Two changes.\n\n```diff\n--- a/app/urls.py\n+++ b/app/urls.py\n@@ -2,3 +2,4 @@\n \n"
    " urlpatterns = [\n+    path('', home),\n ]\n```\n\n"
    "```diff\n--- /dev/null\n+++ b/app/tests.py\n@@ -0,0 +1,2 @@\n+def test_home():\n"
    "+    assert True\n```\n"
)
URLS_AFTER = "from django.urls import path\n\nurlpatterns = [\n    path('', home),\n]\n"
TESTS_AFTER = "def test_home():\n    assert True\n"
STALE = (
    "```diff\n--- a/app/views.py\n+++ b/app/views.py\n@@ -1,2 +1,2 @@\n"
    "-def index(request):\n+def start(request):\n     return None\n```\n"
)


def steps(publish: dict) -> list[dict]:
    return [
        {"name": "implement", "model": "chat", "prompt": "Fix this issue:\n{input}"},
        {"name": "publish", **publish},
    ]


PULL = {
    "kind": "github_pull_request",
    "requires_approval": True,
    "options": {"labels": ["orchestra", "bot"]},
}


def finished(build: Build, timeout: float = 30.0) -> Build:
    def done() -> Build | None:
        build.refresh_from_db()
        return build if build.finished else None

    return eventually(done, timeout, f"build {build.pk} finished")


def step_status(build: Build, name: str, status: str) -> BuildStep:
    def reached() -> BuildStep | None:
        step = build.steps.get(name=name)
        return step if step.status == status else None

    return eventually(reached, 20.0, f"step {name} {status}")


def nothing_published(fake: FakeGitHub, build: Build) -> None:
    assert fake.branch_files(REPO, f"orchestra/build-{build.pk}") is None
    assert set(fake.state.branches[REPO]) == {"main"}
    assert not fake.state.pulls.get(REPO)
    assert not BuildPullRequest.objects.exists()
    writes = [r for r in fake.requests if r.method in ("POST", "PUT", "DELETE", "PATCH")]
    assert writes == []


def test_an_approved_publish_step_opens_the_pull_request_of_the_builds_patches(
    gears, two_providers, upstream_a, celery_worker
):
    upstream_a.enqueue({"content": CODE})
    operator = signed_in(Role.OPERATOR)
    created = operator.post(
        "/api/v1/builds",
        {"github_issue": f"{REPO}#1", "steps": steps(PULL)},
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    answer = created.json()
    assert answer["github_issue"] == f"{REPO}#1"
    assert answer["title"] == "The home page has no route"
    assert "Opening / answers 404." in answer["input"]
    assert "It should be `home` in app/views.py." in answer["input"]
    assert [s["kind"] for s in answer["steps"]] == ["llm", "github_pull_request"]
    build = Build.objects.get(pk=answer["id"])

    step = step_status(build, "publish", RunStatus.AWAITING_APPROVAL)
    prompt = upstream_a.stats()["last_request"]["body"]["messages"][-1]["content"]
    assert prompt.startswith("Fix this issue:\n# The home page has no route")
    assert "Opening / answers 404." in prompt and "It should be `home`" in prompt
    assert set(gears.state.branches[REPO]) == {"main"}  # nothing before the approval

    approval_decide(approval=step.approval, decision="approved", by=user_create(role=Role.ADMIN))

    build = finished(build)
    assert build.status == BuildStatus.SUCCEEDED, build.error
    [pull] = gears.state.pulls[REPO]
    assert pull["head"]["ref"] == f"orchestra/build-{build.pk}" and pull["base"]["ref"] == "main"
    assert pull["title"] == "The home page has no route"
    assert f"{settings.PLATFORM_URL}/admin/build/{build.pk}/" in pull["body"]
    assert f"Closes {REPO}#1." in pull["body"]
    assert "Two changes." in pull["body"]  # the report: the step before's output
    assert [label["name"] for label in pull["labels"]] == ["orchestra", "bot"]
    # the pull request's change is exactly the build's patches
    assert gears.pull_files(REPO, pull["number"]) == {
        "app/tests.py": (None, TESTS_AFTER),
        "app/urls.py": (URLS, URLS_AFTER),
    }
    assert gears.branch_files(REPO, "main") == FILES

    record = BuildPullRequest.objects.get()
    assert (record.build_id, record.repository, record.number) == (build.pk, REPO, pull["number"])
    assert record.state == PullState.OPEN and record.head_branch == pull["head"]["ref"]
    detail = signed_in(Role.VIEWER).get(f"/api/v1/builds/{build.pk}").json()
    publish = detail["steps"][1]
    assert publish["result_url"] == pull["html_url"] == record.url
    assert pull["html_url"] in publish["output"]
    listed = signed_in(Role.VIEWER).get("/api/v1/github/build-pulls", {"build": build.pk}).json()
    assert [(p["number"], p["state"]) for p in listed["results"]] == [(pull["number"], "open")]
    page = signed_in(Role.VIEWER).get(f"/admin/build/{build.pk}/").content.decode()
    assert f'href="{pull["html_url"]}"' in page and f"{REPO}#1" in page

    # beat's refresh, on the worker: merged on GitHub, merged here
    gears.pull_set_state(REPO, pull["number"], "merged")
    refresh_build_pulls.delay()

    def merged() -> bool:
        record.refresh_from_db()
        return record.state == PullState.MERGED

    eventually(merged, 15.0, "the pull request refreshed as merged")
    assert settings.CELERY_BEAT_SCHEDULE["refresh-github-pulls"]["task"] == refresh_build_pulls.name


def test_a_rejected_publish_step_publishes_nothing(gears, two_providers, upstream_a, celery_worker):
    upstream_a.enqueue({"content": CODE})
    build = build_start_from_issue(
        github_issue=f"{REPO}#1", steps=steps(PULL), by=user_create(role=Role.OPERATOR)
    )
    step = step_status(build, "publish", RunStatus.AWAITING_APPROVAL)
    gears.requests.clear()

    approval_decide(
        approval=step.approval, decision="rejected", by=user_create(role=Role.ADMIN), notes="no"
    )

    build = finished(build)
    assert build.status == BuildStatus.FAILED and "Rejected: no" in build.error
    nothing_published(gears, build)


def test_a_patch_that_does_not_apply_fails_the_step_and_publishes_nothing(
    gears, two_providers, upstream_a, celery_worker
):
    upstream_a.enqueue({"content": CODE + "\n" + STALE})
    github_settings_update(repo="gears")  # "#1" is the default repository's
    gears.requests.clear()
    build = build_start_from_issue(
        github_issue="#1",
        steps=steps({"kind": "github_pull_request"}),
        by=user_create(role=Role.OPERATOR),
        title="stale",
    )
    build = finished(build)

    assert build.status == BuildStatus.FAILED
    step = build.steps.get(name="publish")
    assert step.status == RunStatus.FAILED
    assert "A patch does not apply" in step.error and "app/views.py" in step.error
    assert "Nothing was published" in step.error
    assert step.result_url == ""
    assert build.github_issue == f"{REPO}#1"
    nothing_published(gears, build)


def test_the_comment_step_posts_the_report_on_the_issue(
    gears, two_providers, upstream_a, celery_worker
):
    upstream_a.enqueue({"content": "The route is missing: add `path('', home)`."})
    build = build_start_from_issue(
        github_issue=f"{REPO}#1",
        steps=[
            {"name": "triage", "model": "chat", "prompt": "Triage:\n{input}"},
            {"name": "answer", "kind": "github_comment", "prompt": "Triage:\n\n{steps.triage}"},
        ],
        by=user_create(role=Role.OPERATOR),
    )
    build = finished(build)

    assert build.status == BuildStatus.SUCCEEDED, build.error
    comments = gears.state.comments[(REPO, 1)]
    posted = comments[-1]
    assert posted["body"].startswith("Triage:\n\nThe route is missing: add `path('', home)`.")
    assert f"/admin/build/{build.pk}/" in posted["body"]
    step = build.steps.get(name="answer")
    assert step.result_url == posted["html_url"] and posted["html_url"] in step.output
    assert not gears.state.pulls.get(REPO)


@pytest.mark.parametrize(
    ("reference", "status", "code"),
    [
        ("acme/gears#x", 400, "validation_error"),
        ("gears#1", 400, "validation_error"),
        (f"{REPO}#99", 404, "github_not_found"),
        ("acme/nothing#1", 404, "github_not_found"),
    ],
)
def test_a_bad_or_missing_issue_is_refused(gears, two_providers, reference, status, code):
    answer = signed_in(Role.OPERATOR).post(
        "/api/v1/builds",
        {"github_issue": reference, "steps": steps(PULL)},
        content_type="application/json",
    )
    assert answer.status_code == status, answer.content
    assert answer.json()["error"]["code"] == code
    assert not Build.objects.exists()


def test_the_connection_off_is_a_409(gears, two_providers):
    github_settings_update(enabled=False)
    answer = signed_in(Role.OPERATOR).post(
        "/api/v1/builds",
        {"github_issue": f"{REPO}#1", "steps": steps(PULL)},
        content_type="application/json",
    )
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "github_disabled"


def test_publish_steps_are_checked_when_the_build_is_made(gears, two_providers):
    bad = [
        ({"kind": "gitlab"}, "kind"),
        ({"kind": "github_pull_request", "options": {"labels": "bug"}}, "labels"),
        ({"kind": "github_pull_request", "options": {"reviewers": []}}, "reviewers"),
        ({"kind": "github_pull_request", "model": "chat"}, "model"),
        ({"kind": "github_comment", "options": {"issue": "nope"}}, "issue"),
        ({"prompt": "x", "options": {"a": 1}}, "options"),
    ]
    operator = signed_in(Role.OPERATOR)
    for publish, named in bad:
        answer = operator.post(
            "/api/v1/builds",
            {"title": "t", "steps": steps(publish)},
            content_type="application/json",
        )
        assert answer.status_code == 400, (publish, answer.content)
        assert named in answer.content.decode(), (publish, answer.content)


def test_a_rerun_reads_the_issue_again_and_keeps_its_steps(gears, two_providers):
    build = build_start_from_issue(
        github_issue=f"{REPO}#1", steps=steps(PULL), by=user_create(role=Role.OPERATOR)
    )
    gears.state.comments[(REPO, 1)].append(
        {"id": 1, "body": "Also the about page.", "user": {"login": "ann"}, "created_at": "now"}
    )
    gears.state.issues[REPO][0]["comments"] += 1

    admin = signed_in(Role.ADMIN)
    answer = admin.post(
        "/admin/builds/build/",
        {"action": "rerun_selected", "_selected_action": [build.pk]},
        follow=True,
    )

    assert answer.status_code == 200
    again = Build.objects.exclude(pk=build.pk).get()
    assert again.github_issue == f"{REPO}#1" and again.title == build.title
    assert "## Comments (1)" in build.input and "## Comments (2)" in again.input
    assert "It should be `home`" in again.input and "Also the about page." in again.input
    assert list(again.steps.values_list("kind", "options", "requires_approval")) == [
        ("llm", {}, False),
        ("github_pull_request", {"labels": ["orchestra", "bot"]}, True),
    ]
