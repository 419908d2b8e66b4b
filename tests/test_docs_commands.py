"""Every document's commands are tested: docs/getting-started.md's shell blocks run as written
against a fresh platform (as the README's "Try it" does, through the same runner), and every
shell command of every other page, which needs what this machine does not have (docker,
kubectl, a real deployment) or changes things a test must not, is checked against the code
(``tests/support/doc_commands.py`` says how)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.doc_commands import (
    command_problems,
    commands,
    is_whole_suite,
    run_on_fresh_platform,
    shell_blocks,
)
from tests.support.processes import REPO_ROOT

GETTING_STARTED = REPO_ROOT / "docs" / "getting-started.md"
DOCUMENTS = sorted([REPO_ROOT / "README.md", *(REPO_ROOT / "docs").rglob("*.md")])


def document_commands(path: Path) -> list[str]:
    return [command for block in shell_blocks(path.read_text()) for command in commands(block)]


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda path: str(path.relative_to(REPO_ROOT)))
def test_every_command_a_document_gives_matches_the_code(path: Path):
    problems = {
        command: found
        for command in document_commands(path)
        if (found := command_problems(command))
    }
    assert problems == {}


def test_the_getting_started_guide_has_the_two_commands_and_a_build():
    lines = document_commands(GETTING_STARTED)
    assert "make run" in [line.split("#")[0].strip() for line in lines]
    assert [line for line in lines if is_whole_suite(line)]
    assert any("/api/v1/builds" in line for line in lines)


@pytest.mark.slow
def test_the_getting_started_guide_works_as_written(tmp_path: Path):
    ran = run_on_fresh_platform(document_commands(GETTING_STARTED), tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "Traceback" not in ran.platform_output
    provider, tested, synced, chat, agent, status, build, artifacts = [
        json.loads(line) for line in ran.answers()
    ]
    assert provider["name"] == "demo"
    assert provider["base_url"] == f"http://127.0.0.1:{ran.fake_port}/v1"
    assert tested["ok"] and synced["created"] == ["fake-model", "fake-model-2"]
    assert chat["choices"][0]["message"]["content"].startswith("Hello from demo")
    assert agent["name"] == "planner"
    assert status == "succeeded" and build["status"] == "succeeded"
    assert [step["name"] for step in build["steps"]] == ["plan", "review"]
    assert all(step["output"].startswith("Hello from demo") for step in build["steps"])
    results = artifacts["results"] if isinstance(artifacts, dict) else artifacts
    assert results and {artifact["build"] for artifact in results} == {build["id"]}


# --- the checker on made-up commands ----------------------------------------------------------

FABRICATED = {
    "curl -s http://127.0.0.1:8000/api/v1/gadgets": "no operation GET /api/v1/gadgets",
    "curl -s -X DELETE http://127.0.0.1:8000/api/v1/query": "no operation DELETE /api/v1/query",
    "KEY=$(.venv/bin/python manage.py create_gadget admin)": "no management command",
    ".venv/bin/python manage.py create_api_key admin --colour red": "create_api_key refuses",
    "make deploy": "no make target deploy",
    "docker compose -f docker-compose.dev.yml up -d": "no compose file",
    "docker compose -f docker-compose.prod.yml up -d --scale gadget=2": "no compose service",
    "docker compose exec web python manage.py polish": "no management command polish",
    "kubectl apply -f deploy/gadgets/": "no file deploy/gadgets/",
    "helm install orchestra ./chart": "no check for the program 'helm'",
    ".venv/bin/python -m tests.no_such_module": "no module tests.no_such_module",
}


@pytest.mark.parametrize("command, problem", FABRICATED.items())
def test_the_checker_finds_a_made_up_command(command: str, problem: str):
    found = command_problems(command)
    assert len(found) == 1 and problem in found[0], found


def test_the_checker_accepts_real_commands():
    real = [
        "make run PORT=9000 HOST=0.0.0.0",
        'make test PYTEST_ARGS="tests/providers -q"',
        "KEY=$(.venv/bin/python manage.py create_api_key alice --name ci --expires-in-days 90)",
        'curl -s -X POST -H "Authorization: Bearer $KEY" '
        "http://127.0.0.1:8000/api/v1/providers/$ID/sync-models",
        "curl -s http://127.0.0.1:8000/v1/models",
        "curl -s http://127.0.0.1:8000/health",
        "docker compose -f docker-compose.prod.yml up -d --scale web=3 --scale worker=2",
        "docker compose -f docker-compose.prod.yml exec web python manage.py sync_models --all",
        'while [ "$S" = queued ]; do sleep 1; S=$(echo x); done',
    ]
    assert {command: command_problems(command) for command in real} == {c: [] for c in real}


def test_commands_spanning_lines_stay_whole():
    block = "A=1\ncurl -d '{\n  \"a\": 1\n}' http://x \\\n  -s\necho done  # ok\n\n"
    assert commands(block) == [
        "A=1",
        "curl -d '{\n  \"a\": 1\n}' http://x    -s",
        "echo done  # ok",
    ]
