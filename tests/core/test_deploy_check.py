import secrets
import subprocess
import sys

from django.core.checks import run_checks

from tests.support.processes import REPO_ROOT


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    base_env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "orchestra.settings.production"}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env={**base_env, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_the_documented_variables():
    result = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="orchestra.example.com",
        DATABASE_URL="postgres://orchestra:pw@db:5432/orchestra",
        REDIS_URL="redis://redis:6379/0",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    result = run_manage("check", ALLOWED_HOSTS="orchestra.example.com")
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_djangos_checks_of_its_middleware_run_with_the_projects_subclasses(settings):
    """MIDDLEWARE names apps.core.async_middleware's classes, not Django's: the deploy checks
    Django runs only when its own paths are there still run."""
    settings.SECURE_HSTS_SECONDS = 0
    settings.X_FRAME_OPTIONS = "SAMEORIGIN"
    settings.CSRF_COOKIE_SECURE = False
    found = {message.id for message in run_checks(include_deployment_checks=True)}
    assert {"security.W004", "security.W019", "security.W016"} <= found
