"""The README's "Try it" lines, run as written against a fresh platform: nothing configured, the
fake OpenAI-compatible server standing in for a model. Only the ports change (the README's 8000
and 9000 may be taken on a machine running tests)."""

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


def test_the_readme_try_it_works_as_written(tmp_path: Path):
    lines = try_it_lines()
    assert lines[0] == "make run" and "tests.fake_upstream" in lines[1]
    port, fake_port = free_port(), free_port()

    def localised(line: str) -> str:
        return (
            line.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
            .replace("--port 9000", f"--port {fake_port}")
            .replace("127.0.0.1:9000", f"127.0.0.1:{fake_port}")
            .replace(".venv/bin/python", sys.executable)
        )

    env = fresh_checkout_env(tmp_path / "var")
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
    assert tested["ok"] and tested["models"] == ["fake-model", "fake-model-2"]
    assert synced["created"] == ["fake-model", "fake-model-2"]
    assert chat["choices"][0]["message"]["content"].startswith("Hello from demo")
