"""The project's GitHub workflows, read (GitHub does not run here): CI runs what ``.ci/run`` runs
(its commands and Debian packages are read from the script, not copied here), against
PostgreSQL and Redis where the test settings expect them, on the Dockerfile's Python; the
release builds and pushes a multi-arch image; the image scan fails on critical findings."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.support.processes import REPO_ROOT

WORKFLOWS = REPO_ROOT / ".github" / "workflows"
CI_RUN = REPO_ROOT / ".ci" / "run"
TEST_SETTINGS = REPO_ROOT / "orchestra" / "settings" / "test.py"
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@v?\d+(\.\d+)*$")  # owner/action@v4, @0.33.1


def workflow(name: str) -> dict[str, Any]:
    loaded = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key ``on`` as True.
    loaded["on"] = loaded.pop(True, loaded.get("on"))
    return loaded


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return job["steps"]


def run_lines(job: dict[str, Any]) -> list[str]:
    """Each line of each step's ``run``, continuation lines joined."""
    lines = []
    for step in steps(job):
        text = step.get("run", "").replace("\\\n", " ")
        lines += [" ".join(line.split()) for line in text.splitlines() if line.strip()]
    return lines


def uses(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    """The steps of ``job`` using ``action`` (owner/name, any version)."""
    return [step for step in steps(job) if step.get("uses", "").split("@")[0] == action]


# --- what .ci/run does, read from the script -------------------------------------------------


def ci_run_commands(script: str) -> list[str]:
    """The top-level commands of the script that lint and test: its ``make`` lines."""
    return [" ".join(line.split()) for line in script.splitlines() if line.startswith("make ")]


def ci_run_packages(script: str) -> set[str]:
    """The Debian packages the script installs (what it adds to ``missing``)."""
    added = re.findall(r"missing\+=\(([^)]*)\)", script)
    return {package for group in added for package in shlex.split(group)}


def installed_packages(job: dict[str, Any]) -> set[str]:
    packages: set[str] = set()
    for line in run_lines(job):
        if "apt-get install" in line:
            words = shlex.split(line.split("apt-get install", 1)[1])
            packages |= {word for word in words if not word.startswith("-") and "=" not in word}
    return packages


def missing_from(job: dict[str, Any], script: str) -> list[str]:
    """What ``script`` (.ci/run's text) runs or installs that the CI job does not."""
    runs = run_lines(job)
    missing = [command for command in ci_run_commands(script) if command not in runs]
    return missing + sorted(ci_run_packages(script) - installed_packages(job))


@pytest.fixture(scope="module")
def ci() -> dict[str, Any]:
    return workflow("ci.yml")


@pytest.fixture(scope="module")
def test_job(ci) -> dict[str, Any]:
    return ci["jobs"]["test"]


def test_ci_runs_on_every_push_and_pull_request(ci):
    assert {"push", "pull_request"} <= set(ci["on"])


def test_ci_runs_what_ci_run_runs_in_its_order(test_job):
    script = CI_RUN.read_text()
    commands = ci_run_commands(script)
    assert "make lint" in commands and "make test" in commands
    assert missing_from(test_job, script) == []
    runs = run_lines(test_job)
    assert [runs.index(command) for command in commands] == sorted(
        runs.index(command) for command in commands
    )


def test_the_check_finds_a_command_or_package_ci_run_gains(test_job):
    script = CI_RUN.read_text()
    assert ci_run_packages(script) >= {"chromium", "nginx", "prometheus"}
    changed = script.replace("make test\n", "make test\nmake bench\n").replace(
        "missing+=(nginx)", "missing+=(nginx redis-tools)"
    )
    assert missing_from(test_job, changed) == ["make bench", "redis-tools"]


def test_ci_runs_the_audit_but_ci_run_does_not(ci):
    assert "make audit" in run_lines(ci["jobs"]["audit"])
    assert "audit" not in CI_RUN.read_text()
    makefile = (REPO_ROOT / "Makefile").read_text()
    audit = re.search(r"^audit:.*\n\t(.*)$", makefile, re.MULTILINE)
    assert audit and "pip-audit" in audit.group(1)
    for requirements in ("requirements.txt", "requirements-dev.txt"):
        assert f"-r {requirements}" in audit.group(1)
    dev = (REPO_ROOT / "requirements-dev.txt").read_text().splitlines()
    assert [line for line in dev if re.fullmatch(r"pip-audit==[\d.]+", line)]


def test_postgres_and_redis_are_services_where_the_test_settings_expect_them(test_job):
    text = TEST_SETTINGS.read_text()
    database = urlsplit(re.findall(r'"DATABASE_URL", "([^"]+)"', text)[0])
    redis = urlsplit(re.findall(r'"REDIS_URL", f"([^"]+)"', text)[0])
    services = test_job["services"]
    env = test_job.get("env", {})
    for name, expected, variable in (
        ("postgres", database, "DATABASE_URL"),
        ("redis", redis, "REDIS_URL"),
    ):
        service = services[name]
        assert service["image"].split(":")[0] == name
        assert f"{expected.port}:{expected.port}" in service["ports"]
        assert "--health-cmd" in service["options"]
        # The job runs in a container: the services answer at their names, on the same ports.
        given = urlsplit(env.get(variable, expected.geturl()))
        assert given.hostname in {name, expected.hostname}
        assert (given.scheme, given.port, given.username) == (
            expected.scheme,
            expected.port,
            expected.username,
        )
    assert urlsplit(env["DATABASE_URL"]).path == database.path
    postgres_env = services["postgres"]["env"]
    assert postgres_env["POSTGRES_HOST_AUTH_METHOD"] == "trust"  # the URL gives no password
    assert "/" + postgres_env["POSTGRES_DB"] == database.path


def test_ci_uses_the_python_of_the_dockerfile_and_pyproject(ci, test_job):
    text = (REPO_ROOT / "Dockerfile").read_text()
    dockerfile = re.findall(r"^FROM python:(\d+\.\d+)", text, re.MULTILINE)
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    mypy = re.findall(r'^python_version = "(\d+\.\d+)"', pyproject, re.MULTILINE)
    assert len(set(dockerfile)) == 1 and mypy == dockerfile[:1]
    version = dockerfile[0]
    assert re.fullmatch(rf"python:{re.escape(version)}-\w+", test_job["container"]["image"])
    for job in ci["jobs"].values():
        for step in uses(job, "actions/setup-python"):
            assert str(step["with"]["python-version"]) == version


def test_the_release_pushes_a_multi_arch_image_built_from_the_dockerfile():
    release = workflow("release.yml")
    assert release["on"]["release"]["types"] == ["published"]
    assert release["permissions"]["packages"] == "write"
    (job,) = release["jobs"].values()
    for action in ("docker/setup-qemu-action", "docker/setup-buildx-action"):
        assert len(uses(job, action)) == 1, action
    (login,) = uses(job, "docker/login-action")
    assert login["with"]["registry"] == "ghcr.io"
    assert login["with"]["password"] == "${{ secrets.GITHUB_TOKEN }}"
    (meta,) = uses(job, "docker/metadata-action")
    assert meta["with"]["images"] == "ghcr.io/${{ github.repository }}"
    (build,) = uses(job, "docker/build-push-action")
    options = build["with"]
    assert set(options["platforms"].split(",")) == {"linux/amd64", "linux/arm64"}
    assert options["push"] is True
    assert options["tags"] == "${{ steps." + meta["id"] + ".outputs.tags }}"
    assert (REPO_ROOT / options["file"]).is_file() and options["context"] == "."
    assert f"AS {options['target']}" in (REPO_ROOT / options["file"]).read_text()


def test_the_image_scan_runs_on_release_and_weekly_and_fails_on_critical():
    scan = workflow("image-scan.yml")
    assert scan["on"]["release"]["types"] == ["published"]
    (schedule,) = scan["on"]["schedule"]
    _minute, _hour, day, month, weekday = schedule["cron"].split()
    assert (day, month) == ("*", "*") and weekday.isdigit()  # weekly
    (job,) = scan["jobs"].values()
    (build,) = uses(job, "docker/build-push-action")
    assert build["with"]["load"] is True and build["with"]["file"] == "Dockerfile"
    (trivy,) = uses(job, "aquasecurity/trivy-action")
    assert trivy["with"]["image-ref"] == build["with"]["tags"]
    assert trivy["with"]["severity"] == "CRITICAL"
    assert str(trivy["with"]["exit-code"]) == "1"


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.yml")), ids=lambda path: path.name)
def test_actions_are_pinned_and_no_secret_but_the_token_is_used(path: Path):
    loaded = workflow(path.name)
    for job in loaded["jobs"].values():
        for step in steps(job):
            if "uses" in step:
                assert PINNED.match(step["uses"]), step["uses"]
    assert set(re.findall(r"secrets\.(\w+)", path.read_text())) <= {"GITHUB_TOKEN"}
