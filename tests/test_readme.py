"""The README's "Try it" lines, run as written against a fresh platform: nothing configured, the
fake OpenAI-compatible server standing in for a model (the runner is
``tests/support/doc_commands.py``, which docs/getting-started.md's test uses too)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.support.doc_commands import commands, run_on_fresh_platform
from tests.support.processes import REPO_ROOT

pytestmark = pytest.mark.slow


def try_it_commands() -> list[str]:
    readme = (REPO_ROOT / "README.md").read_text()
    block = re.search(r"### Try it\n.*?```sh\n(.*?)```", readme, re.S)
    assert block, "the README has no Try it block"
    return commands(block[1])


def fake_upstream_port(lines: list[str]) -> str:
    match = re.search(r"--port (\d+)", lines[1])
    assert match, lines[1]
    return match[1]


def test_the_try_it_ports_do_not_collide_with_make_run():
    """The fake server's port is free whatever port the README runs the platform on."""
    readme = (REPO_ROOT / "README.md").read_text()
    platform_ports = {"8000", *re.findall(r"make run PORT=(\d+)", readme)}
    assert fake_upstream_port(try_it_commands()) not in platform_ports


def test_the_try_it_names_no_provider_id_of_its_own():
    """A provider's id depends on what the database holds: the lines take it from the answer."""
    lines = try_it_commands()
    assert not [line for line in lines if re.search(r"/providers/\d", line)], lines


def test_the_readme_says_how_long_make_test_takes():
    readme = (REPO_ROOT / "README.md").read_text()
    assert re.search(r"`make test` takes about \d+ to \d+ minutes", readme)


def test_the_readme_try_it_works_as_written(tmp_path: Path):
    lines = try_it_commands()
    assert lines[0] == "make run" and "tests.fake_upstream" in lines[1]
    # A provider made before (disabled, from the environment) so that "demo" is not id 1.
    ran = run_on_fresh_platform(lines, tmp_path, OLLAMA_HOST="127.0.0.1:9", OLLAMA_ENABLED="false")
    assert ran.returncode == 0, ran.stderr
    # A clean Ctrl-C after LLM calls leaves no connection unclosed and no traceback.
    assert "Unclosed client session" not in ran.platform_output
    assert "Traceback" not in ran.platform_output
    created, tested, synced, chat = [json.loads(line) for line in ran.answers()]
    assert created["name"] == "demo"
    assert created["base_url"] == f"http://127.0.0.1:{ran.fake_port}/v1"
    assert created["id"] != 1, "the provider made before should have taken id 1"
    assert tested["ok"] and tested["models"] == ["fake-model", "fake-model-2"]
    assert synced["created"] == ["fake-model", "fake-model-2"]
    assert chat["choices"][0]["message"]["content"].startswith("Hello from demo")
