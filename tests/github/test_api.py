"""The GitHub API against the fake GitHub: each call, its pagination, and each of GitHub's
errors in the platform's error shape."""

from __future__ import annotations

import time

import pytest

from apps.accounts.models import Role
from apps.github.models import GitHubSettings
from tests.github.conftest import TOKEN, signed_in

pytestmark = pytest.mark.django_db(transaction=True)

API = "/api/v1/github"


def _json(client, method: str, path: str, body: dict | None = None):
    return getattr(client, method)(path, body or {}, content_type="application/json")


def test_the_user_and_a_repository(connected):
    client = signed_in(Role.VIEWER)
    user = client.get(f"{API}/user")
    assert user.status_code == 200, user.content
    assert user.json()["login"] == "octocat"
    repo = client.get(f"{API}/repos/acme/widgets").json()
    assert repo["full_name"] == "acme/widgets" and repo["default_branch"] == "main"
    # the token went to GitHub as GitHub wants it
    assert connected.requests[0].headers["Authorization"].endswith(TOKEN)


def test_issues_created_listed_updated_commented_and_closed(connected):
    operator = signed_in(Role.OPERATOR)
    created = _json(operator, "post", f"{API}/repos/acme/widgets/issues",
                    {"title": "Broken gear", "body": "It squeaks.", "labels": ["bug"]})  # fmt: skip
    assert created.status_code == 201, created.content
    number = created.json()["number"]
    assert created.json()["labels"] == ["bug"]
    _json(operator, "post", f"{API}/issues", {"title": "Second", "labels": ["docs"]})

    viewer = signed_in(Role.VIEWER)
    bugs = viewer.get(f"{API}/repos/acme/widgets/issues", {"labels": "bug"}).json()
    assert [issue["title"] for issue in bugs["results"]] == ["Broken gear"]
    assert viewer.get(f"{API}/issues/{number}").json()["body"] == "It squeaks."

    updated = _json(operator, "patch", f"{API}/issues/{number}", {"title": "Broken gears"})
    assert updated.status_code == 200 and updated.json()["title"] == "Broken gears"
    comment = _json(operator, "post", f"{API}/issues/{number}/comments", {"body": "Seen it."})
    assert comment.status_code == 201 and comment.json()["body"] == "Seen it."
    assert viewer.get(f"{API}/issues/{number}").json()["comments"] == 1

    closed = _json(operator, "post", f"{API}/issues/{number}/close", {"reason": "not_planned"})
    assert closed.json()["state"] == "closed"
    assert closed.json()["state_reason"] == "not_planned"
    open_titles = [i["title"] for i in viewer.get(f"{API}/issues").json()["results"]]
    assert open_titles == ["Second"]
    patch = connected.requests[-2]
    assert patch.method == "PATCH" and patch.body == {
        "state": "closed",
        "state_reason": "not_planned",
    }


def test_issue_lists_follow_githubs_link_pagination(connected):
    operator = signed_in(Role.OPERATOR)
    for n in range(5):
        _json(operator, "post", f"{API}/issues", {"title": f"Issue {n}"})
    viewer = signed_in(Role.VIEWER)
    first = viewer.get(f"{API}/issues", {"per_page": 2}).json()
    assert [i["title"] for i in first["results"]] == ["Issue 0", "Issue 1"]
    assert (first["next_page"], first["prev_page"], first["last_page"]) == (2, None, 3)
    last = viewer.get(f"{API}/issues", {"per_page": 2, "page": 3}).json()
    assert [i["title"] for i in last["results"]] == ["Issue 4"]
    assert (last["next_page"], last["prev_page"]) == (None, 2)
    assert connected.requests[-1].query["per_page"] == ["2"]


def test_pull_requests_created_listed_and_read(connected):
    operator = signed_in(Role.OPERATOR)
    pull = {"title": "Fix gears", "head": "feature", "base": "main", "body": "Oiled."}
    made = _json(operator, "post", f"{API}/pulls", pull)
    assert made.status_code == 201, made.content
    number = made.json()["number"]
    viewer = signed_in(Role.VIEWER)
    assert viewer.get(f"{API}/pulls").json()["results"][0]["head"] == "feature"
    pull = viewer.get(f"{API}/repos/acme/widgets/pulls/{number}").json()
    assert (pull["state"], pull["merged"], pull["base"]) == ("open", False, "main")


def test_the_kept_paths_answer_the_same(connected):
    viewer = signed_in(Role.VIEWER)
    assert viewer.get("/api/github/user").json()["login"] == "octocat"
    assert viewer.get("/api/github/issues").json()["results"] == []


def _error(response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def test_githubs_errors_in_the_platforms_shape(connected):
    viewer, operator = signed_in(Role.VIEWER), signed_in(Role.OPERATOR)
    assert _error(viewer.get(f"{API}/repos/acme/nothing")) == (404, "github_not_found")
    assert _error(viewer.get(f"{API}/issues/99")) == (404, "github_not_found")

    invalid = _json(
        operator, "post", f"{API}/pulls", {"title": "x", "head": "nope", "base": "main"}
    )
    assert _error(invalid) == (422, "github_validation_failed")
    assert "head invalid" in invalid.json()["error"]["message"]

    connected.fail_next(401, {"message": "Bad credentials"})
    assert _error(viewer.get(f"{API}/user")) == (401, "github_unauthorized")

    connected.fail_next(403, {"message": "Resource not accessible by integration"})
    denied = viewer.get(f"{API}/user")
    assert _error(denied) == (403, "github_forbidden")
    assert "Resource not accessible" in denied.json()["error"]["message"]


def test_a_spent_rate_limit_is_a_429_with_the_reset_as_retry_after(connected):
    viewer = signed_in(Role.VIEWER)
    reset = int(time.time()) + 120
    connected.fail_next(
        403,
        {"message": "API rate limit exceeded for user ID 1."},
        {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)},
    )
    limited = viewer.get(f"{API}/user")
    assert _error(limited) == (429, "github_rate_limited")
    assert 100 <= int(limited["Retry-After"]) <= 121
    assert len(connected.requests) == 1  # a primary limit is not retried

    connected.fail_next(429, {"message": "You have exceeded a secondary rate limit."},
                        {"Retry-After": "600"})  # fmt: skip
    long_wait = viewer.get(f"{API}/user")
    assert _error(long_wait) == (429, "github_rate_limited")
    assert long_wait["Retry-After"] == "600"


def test_a_short_secondary_rate_limit_is_waited_out_once(connected):
    connected.fail_next(403, {"message": "You have exceeded a secondary rate limit."},
                        {"Retry-After": "1"})  # fmt: skip
    started = time.monotonic()
    answer = signed_in(Role.VIEWER).get(f"{API}/user")
    assert answer.status_code == 200
    assert time.monotonic() - started >= 1
    assert len(connected.requests) == 2


def test_a_disabled_connection_says_so(fake_github):
    assert _error(signed_in(Role.VIEWER).get(f"{API}/user")) == (409, "github_disabled")
    assert fake_github.requests == []


def test_the_default_repository_must_be_set_for_the_short_paths(connected):
    GitHubSettings.objects.update(repo="")
    assert _error(signed_in(Role.VIEWER).get(f"{API}/issues")) == (400, "github_no_default_repo")


def test_input_is_checked_before_github_is_asked(connected):
    operator = signed_in(Role.OPERATOR)
    assert _json(operator, "post", f"{API}/issues", {"body": "no title"}).status_code == 400
    assert operator.get(f"{API}/issues", {"per_page": 500}).status_code == 400
    assert operator.get(f"{API}/repos/acme/wid%20gets/issues").status_code == 404
    assert connected.requests == []
