"""A hostile client over the whole published schema: schemathesis against a real daphne.

The schema is the live ``/api/schema/``; every operation in it is called with generated input,
valid and invalid (schemathesis's positive and negative modes), with an admin's, an operator's
and a viewer's API key. The run is seeded (Hypothesis ``derandomize``) and short (a few examples
per operation, mode and role), so it fits CI. Each answer must hold:

* no 5xx, whatever the input or the role;
* every error (4xx) is JSON in the documented shape: ``{"error": {"code", "message",
  "details"}}``, or OpenAI's ``{"error": {"message", "type", "param", "code"}}`` under ``/v1/``;
* what the schema declares for that status and content type (schemathesis's response schema and
  content type conformance checks).

The run's own keys must survive it: revoking an API key and changing a user's role (``LAST``)
may hit the keys the run uses, so those operations run after every other operation, for every
role, viewer first and admin last. Failures are gathered (one per operation, role and kind) and
reported together, each with a curl line that replays it (the key left out). What the run
queued for Celery (builds, agent tasks) is purged at its end.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from apps.accounts.models import Role
from orchestra.celery import app as celery_app
from tests.support.factories import api_key_issue, bearer

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROLES = (Role.VIEWER, Role.OPERATOR, Role.ADMIN)
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
EXAMPLES = 4  # per operation, mode and role: about 2,500 requests in all
LAST = {"POST /api/v1/api-keys/{id}/revoke", "POST /api/v1/users/{id}/role"}
TIMEOUT_SECONDS = 15
REST_ERROR_KEYS = {"code", "message", "details"}
OPENAI_ERROR_KEYS = {"message", "type", "param", "code"}


@dataclass(frozen=True)
class Failure:
    operation: str
    role: str
    kind: str
    status: int
    detail: str
    curl: str

    def __str__(self) -> str:
        return (
            f"{self.operation} as {self.role}: {self.kind} (HTTP {self.status})\n"
            f"    {self.detail}\n    {self.curl}"
        )


def shape_error(path: str, response: requests.Response) -> str | None:
    """What is wrong with an error answer's shape, or None when it is the documented one."""
    try:
        body = response.json()
    except ValueError:
        kind = response.headers.get("Content-Type", "no content type")
        return f"not JSON ({kind}): {response.text[:200]!r}"
    error = body.get("error") if isinstance(body, dict) else None
    if path.startswith("/v1/"):
        expected, shape = OPENAI_ERROR_KEYS, "OpenAI's error shape"
    else:
        expected, shape = REST_ERROR_KEYS, '{"error": {"code", "message", "details"}}'
    if not isinstance(error, dict) or not expected <= set(error):
        return f"not {shape}: {json.dumps(body)[:300]}"
    if not isinstance(error["message"], str) or not error["message"]:
        return f"no message: {json.dumps(body)[:300]}"
    return None


def run_operation(
    operation,
    role: Role,
    key: str,
    session: requests.Session,
    base_url: str,
    record: Callable[[Failure], None],
) -> None:
    label = f"{operation.method.upper()} {operation.path}"

    def curl(case) -> str:
        command = case.as_curl_command(base_url=base_url)
        return f"{command} -H 'Authorization: Bearer <{role.value} key>'"

    def check(case) -> None:
        try:
            response = case.call(
                base_url=base_url, session=session, headers=bearer(key), timeout=TIMEOUT_SECONDS
            )
        except requests.RequestException as exc:
            record(Failure(label, role.value, "no answer", 0, repr(exc), curl(case)))
            return
        status = response.status_code
        if status >= 500:
            body = response.text[:300]
            record(Failure(label, role.value, "server error", status, body, curl(case)))
            return
        if status >= 400 and (problem := shape_error(operation.path, response)):
            record(
                Failure(
                    label, role.value, "error off the documented shape", status, problem, curl(case)
                )
            )
            return
        try:
            case.validate_response(
                response, checks=[response_schema_conformance, content_type_conformance]
            )
        except FailureGroup as group:
            for failure in group.exceptions:
                record(
                    Failure(
                        label,
                        role.value,
                        f"schema conformance: {failure.title}",
                        status,
                        failure.message[:300],
                        curl(case),
                    )
                )

    for mode in MODES:
        strategy = operation.as_strategy(generation_mode=mode)
        run = settings(
            max_examples=EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )(given(case=strategy)(check))
        try:
            run()
        except Unsatisfiable:  # nothing to make invalid (no parameters, no body)
            assert mode is GenerationMode.NEGATIVE, label


def test_the_whole_schema_answers_every_role_without_5xx_or_stray_shapes(asgi_server):
    keys = {role: api_key_issue(role=role) for role in ROLES}
    schema = schemathesis.openapi.from_url(
        f"{asgi_server.url}/api/schema/?format=json", headers=bearer(keys[Role.ADMIN])
    )
    operations = [result.ok() for result in schema.get_all_operations()]
    labelled = {f"{op.method.upper()} {op.path}": op for op in operations}
    assert set(labelled) >= LAST, "the operations run last are no longer in the schema"
    assert len(operations) > 90, f"only {len(operations)} operations in the schema"

    failures: dict[tuple[str, str, str], Failure] = {}

    def record(failure: Failure) -> None:
        failures.setdefault((failure.operation, failure.role, failure.kind), failure)

    ordered = [op for label, op in labelled.items() if label not in LAST]
    try:
        with requests.Session() as session:
            for role in ROLES:
                for operation in ordered:
                    run_operation(operation, role, keys[role], session, asgi_server.url, record)
            for role in ROLES:
                for label in sorted(LAST):
                    run_operation(
                        labelled[label], role, keys[role], session, asgi_server.url, record
                    )
    finally:  # the builds and agent tasks it queued must not run in later tests' worker
        celery_app.control.purge()

    report = "\n".join(str(failure) for failure in failures.values())
    assert not failures, f"{len(failures)} failures over the schema:\n{report}"


@pytest.mark.parametrize(
    "path",
    ["/api/v1/me", "/api/v1/users", "/api/v1/approvals/policy", "/api/v1/experiments/settings"],
)
def test_first_day_answers_match_the_schema(asgi_server, path):
    """A user with no email and settings nobody has saved yet (``updated_at`` null) are what a
    fresh platform answers; the schema must describe them."""
    key = api_key_issue(role=Role.ADMIN)
    schema = schemathesis.openapi.from_url(f"{asgi_server.url}/api/schema/?format=json")
    response = httpx.get(f"{asgi_server.url}{path}", headers=bearer(key))
    assert response.status_code == 200, response.text
    schema[path]["GET"].validate_response(response)
