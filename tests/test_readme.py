"""The README's "Try it" lines, run as written against a fresh platform: nothing configured, the
fake OpenAI-compatible server standing in for a model. Only the ports change (the README's may
be taken on a machine running tests)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fake_upstream import free_port
from tests.support.processes import READY, REPO_ROOT, ServerProcess, fresh_checkout_env

pytestmark = pytest.mark.slow


def ctrl_c(process: ServerProcess) -> None:
    assert process.process is not None
    process.process.send_signal(signal.SIGINT)
    try:
        process.process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


def try_it_lines() -> list[str]:
    """The shell lines of the README's "Try it" block, continuation lines joined."""
    readme = (REPO_ROOT / "README.md").read_text()
    block = re.search(r"### Try it\n.*?```sh\n(.*?)```", readme, re.S)
    assert block, "the README has no Try it block"
    return block[1].replace("\\\n", " ").splitlines()


def fake_upstream_port(lines: list[str]) -> str:
    match = re.search(r"--port (\d+)", lines[1])
    assert match, lines[1]
    return match[1]


def test_the_try_it_ports_do_not_collide_with_make_run():
    """The fake server's port is free whatever port the README runs the platform on."""
    readme = (REPO_ROOT / "README.md").read_text()
    platform_ports = {"8000", *re.findall(r"make run PORT=(\d+)", readme)}
    assert fake_upstream_port(try_it_lines()) not in platform_ports


def test_the_try_it_names_no_provider_id_of_its_own():
    """A provider's id depends on what the database holds: the lines take it from the answer."""
    lines = try_it_lines()
    assert not [line for line in lines if re.search(r"/providers/\d", line)], lines


def test_the_readme_says_how_long_make_test_takes():
    readme = (REPO_ROOT / "README.md").read_text()
    assert re.search(r"`make test` takes about \d+ to \d+ minutes", readme)


def test_the_readme_try_it_works_as_written(tmp_path: Path):
    lines = try_it_lines()
    assert lines[0] == "make run" and "tests.fake_upstream" in lines[1]
    port, fake_port, readme_fake_port = free_port(), free_port(), fake_upstream_port(lines)

    def localised(line: str) -> str:
        return (
            line.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
            .replace(f"--port {readme_fake_port}", f"--port {fake_port}")
            .replace(f"127.0.0.1:{readme_fake_port}", f"127.0.0.1:{fake_port}")
            .replace(".venv/bin/python", sys.executable)
        )

    # A provider made before (disabled, from the environment) so that "demo" is not id 1.
    env = fresh_checkout_env(tmp_path / "var", OLLAMA_HOST="127.0.0.1:9", OLLAMA_ENABLED="false")
    platform = ServerProcess(
        "readme-platform", [sys.executable, "manage.py", "runplatform", "--port", str(port)], env
    )
    fake = ServerProcess("readme-fake", ["bash", "-c", f"exec {localised(lines[1])}"], env)
    platform.start(lambda: READY in platform.output(), timeout=120)
    fake.start(lambda: "LISTENING" in fake.output(), timeout=30)
    try:
        script = "set -euo pipefail\n" + "\n".join(f"{localised(line)}\necho" for line in lines[2:])
        done = subprocess.run(
            ["bash", "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
    finally:
        fake.stop()
        ctrl_c(platform)
    assert done.returncode == 0, done.stderr
    # A clean Ctrl-C after LLM calls leaves no connection unclosed and no traceback.
    assert "Unclosed client session" not in platform.output()
    assert "Traceback" not in platform.output()
    answers = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    created, tested, synced, chat = answers
    assert created["name"] == "demo" and created["base_url"] == f"http://127.0.0.1:{fake_port}/v1"
    assert created["id"] != 1, "the provider made before should have taken id 1"
    assert tested["ok"] and tested["models"] == ["fake-model", "fake-model-2"]
    assert synced["created"] == ["fake-model", "fake-model-2"]
    assert chat["choices"][0]["message"]["content"].startswith("Hello from demo")
