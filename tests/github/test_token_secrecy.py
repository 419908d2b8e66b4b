"""The token is write-only: no API answer, page, log line (the web's or the worker's), health
report or build artifact carries it, and it is stored encrypted."""

from __future__ import annotations

import logging

import pytest
from django.test import Client

from apps.accounts.models import Role
from apps.approvals.services import approval_decide
from apps.artifacts.models import Artifact
from apps.builds.models import BuildStatus, RunStatus
from apps.github.models import BuildPullRequest, GitHubSettings
from apps.github.services import build_start_from_issue
from tests.github.conftest import REPO, TOKEN, signed_in
from tests.github.test_publish import CODE, PULL, finished, step_status, steps
from tests.support.factories import user_create

pytestmark = pytest.mark.django_db(transaction=True)

API = "/api/v1/github"


def test_the_token_is_in_no_answer_page_or_log_line(connected, caplog):
    caplog.set_level(logging.DEBUG)
    admin = signed_in(Role.ADMIN)
    answers = [
        admin.get(f"{API}/settings"),
        admin.patch(
            f"{API}/settings", {"token": TOKEN, "owner": "acme"}, content_type="application/json"
        ),  # fmt: skip
        admin.post(f"{API}/settings/test"),
        admin.get(f"{API}/user"),
        admin.get(f"{API}/issues"),
        admin.get(f"{API}/repos/acme/nothing"),
        admin.get("/api/github/user"),
        admin.get("/health"),
        admin.get("/api/v1/feature-status"),
        admin.get("/api/schema/"),
        admin.get("/admin/github/githubsettings/"),
        admin.get(f"/admin/github/githubsettings/{GitHubSettings.objects.get().pk}/change/"),
    ]
    connected.fail_next(401, {"message": "Bad credentials"})
    answers.append(admin.get(f"{API}/user"))
    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    assert answers[-1].status_code == 401
    for answer in answers:
        assert TOKEN not in answer.content.decode(errors="replace"), answer.request["PATH_INFO"]
    assert caplog.records, "the calls logged nothing: the check would prove nothing"
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
        assert TOKEN not in str(record.__dict__)
    stored = GitHubSettings.objects.get().token_encrypted
    assert stored and TOKEN not in stored
    # it did reach GitHub
    assert all(r.headers["Authorization"].endswith(TOKEN) for r in connected.requests[:1])


def test_anonymous_pages_do_not_show_it_either(connected):
    assert TOKEN not in Client().get("/health").content.decode()


def test_publishing_a_build_leaves_the_token_nowhere(
    gears, two_providers, upstream_a, celery_worker, caplog
):
    caplog.set_level(logging.DEBUG)
    upstream_a.enqueue({"content": CODE})
    gears.fail_next(401, {"message": "Bad credentials"})  # the issue read is refused once
    operator = signed_in(Role.OPERATOR)
    refused = operator.post(
        "/api/v1/builds",
        {"github_issue": f"{REPO}#1", "steps": steps(PULL)},
        content_type="application/json",
    )
    assert refused.status_code == 401
    build = build_start_from_issue(
        github_issue=f"{REPO}#1", steps=steps(PULL), by=user_create(role=Role.OPERATOR)
    )
    step = step_status(build, "publish", RunStatus.AWAITING_APPROVAL)
    approval_decide(approval=step.approval, decision="approved", by=user_create(role=Role.ADMIN))
    assert finished(build).status == BuildStatus.SUCCEEDED
    assert gears.state.pulls[REPO], "nothing was published: the check would prove little"

    viewer = signed_in(Role.VIEWER)
    admin = signed_in(Role.ADMIN)
    answers = [
        refused,
        viewer.get(f"/api/v1/builds/{build.pk}"),
        viewer.get(f"/api/v1/builds/{build.pk}/events"),
        viewer.get("/api/v1/github/build-pulls"),
        viewer.get("/api/v1/artifacts"),
        viewer.get(f"/admin/build/{build.pk}/"),
        admin.get(f"/admin/builds/build/{build.pk}/change/"),
        admin.get("/admin/github/buildpullrequest/"),
        admin.get(f"/admin/github/buildpullrequest/{BuildPullRequest.objects.get().pk}/change/"),
    ]
    for answer in answers:
        assert answer.status_code in (200, 401), (answer.request["PATH_INFO"], answer.status_code)
        assert TOKEN not in answer.content.decode(errors="replace"), answer.request["PATH_INFO"]
    for artifact in Artifact.objects.filter(build=build):
        assert TOKEN not in artifact.content and TOKEN.encode() not in artifact.file.read()
    for row in build.steps.all():
        assert TOKEN not in row.output + row.error + str(row.options)
    assert TOKEN not in str(list(build.events.values_list("detail", flat=True)))
    for record in caplog.records:
        assert TOKEN not in record.getMessage() and TOKEN not in str(record.__dict__)
    worker_log = celery_worker.output()
    assert "github" in worker_log.lower() or "api.github" in worker_log or "/repos/" in worker_log
    assert TOKEN not in worker_log
