"""Every date filter of every list endpoint, found in the OpenAPI schema (so a new one is covered
without touching this file): an impossible UTC offset is a 400 naming the filter, never a 500
from PostgreSQL (which refuses offsets past 15:59), and a real offset still filters."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from urllib.parse import quote

import pytest
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from apps.accounts.models import Role
from apps.agents.models import Agent
from tests.support.factories import api_key_issue, bearer


def _date_filters() -> list[tuple[str, str]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    found = []
    for path, operations in schema["paths"].items():
        for parameter in operations.get("get", {}).get("parameters", []):
            if parameter["in"] == "query" and parameter["schema"].get("format") == "date-time":
                found.append((path, parameter["name"]))
    return sorted(found)


DATE_FILTERS = _date_filters()
# GitHub's lists pass their date on to GitHub (tests/github has them against a fake GitHub): only
# the refusal of a bad one is the platform's own.
LOCAL_DATE_FILTERS = [(path, name) for path, name in DATE_FILTERS if "/github/" not in path]

# How to fill in the path parameters of an endpoint that has some.
PATH_OBJECTS: dict[str, Callable[[], object]] = {
    "/api/v1/agents/{id}/tasks": lambda: Agent.objects.create(name="dated", role="r").pk,
    "/api/v1/github/repos/{owner}/{repo}/issues": lambda: "octo",
    "/api/v1/github/repos/{owner}/{repo}/pulls": lambda: "octo",
}


def _url(path: str) -> str:
    if "{" not in path:
        return path
    assert path in PATH_OBJECTS, f"say in PATH_OBJECTS how to make the object of {path}"
    return re.sub(r"\{[^}]+\}", str(PATH_OBJECTS[path]()), path)


def test_the_schema_lists_the_known_date_filters():
    paths = {path for path, _ in DATE_FILTERS}
    assert {
        "/api/v1/llm-calls",
        "/api/v1/builds",
        "/api/v1/approvals",
        "/api/v1/approvals/pending",
        "/api/v1/experiments",
        "/api/v1/artifacts",
        "/api/v1/agents/{id}/tasks",
    } <= paths


@pytest.mark.django_db
@pytest.mark.parametrize(("path", "name"), DATE_FILTERS)
@pytest.mark.parametrize("offset", ["+20:46", "-13:00", "+14:01", "-23:59"])
def test_an_out_of_range_utc_offset_is_a_400_naming_the_filter(path, name, offset):
    client = APIClient(headers=bearer(api_key_issue(role=Role.ADMIN)))
    value = quote(f"2025-01-01T00:00:00{offset}")
    response = client.get(f"{_url(path)}?{name}={value}")
    assert response.status_code == 400, response.content[:300]
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    field = name.rsplit("_", 1)[0]
    assert "between -12:00 and +14:00" in str(error["details"][field])


@pytest.mark.django_db
@pytest.mark.parametrize(("path", "name"), LOCAL_DATE_FILTERS)
def test_a_real_utc_offset_still_filters(path, name):
    client = APIClient(headers=bearer(api_key_issue(role=Role.ADMIN)))
    future = (timezone.now() + timedelta(days=1)).astimezone(timezone.get_fixed_timezone(14 * 60))
    response = client.get(_url(path), {name: future.isoformat()})
    assert response.status_code == 200, response.content[:300]
