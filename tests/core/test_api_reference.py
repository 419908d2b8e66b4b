"""The committed REST reference (docs/api/reference/) is what ``manage.py api_reference``
writes from the OpenAPI schema today: a changed API without a regenerated reference fails."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from django.core.management import call_command

from apps.core.api_reference import openapi_schema, reference_pages, stale_pages, write_pages


@pytest.fixture(scope="module")
def schema():
    return openapi_schema()


def test_the_committed_reference_is_current(schema):
    assert stale_pages(schema) == [], "run: .venv/bin/python manage.py api_reference"


def test_every_operation_of_the_schema_is_in_the_reference(schema):
    text = "\n".join(reference_pages(schema).values())
    for path, item in schema["paths"].items():
        for method in ("get", "post", "put", "patch", "delete"):
            if method in item:
                assert f"## `{method.upper()} {path}`" in text


def test_a_changed_schema_makes_the_reference_stale(schema, tmp_path: Path):
    write_pages(schema, tmp_path)
    assert stale_pages(schema, tmp_path) == []
    changed = copy.deepcopy(schema)
    changed["paths"]["/api/v1/query"]["post"]["summary"] = "Ask a model something new."
    assert stale_pages(changed, tmp_path) == ["gateway.md"]
    (tmp_path / "gadgets.md").write_text("# left over\n")
    assert stale_pages(schema, tmp_path) == ["gadgets.md"]
    write_pages(schema, tmp_path)
    assert not (tmp_path / "gadgets.md").exists()


def test_the_command_says_the_reference_is_current(capsys):
    call_command("api_reference", "--check")
    assert "current" in capsys.readouterr().out
