"""``.env.example`` lists every environment variable the code reads, and nothing else.

The code's reads are found in the source: ``env("X")``/``env.int("X", ...)`` (django-environ),
``os.environ.get("X")``, ``os.environ["X"]``, ``"X" in os.environ``, ``os.getenv("X")``; the
variables the provider bootstrap reads (``ENV_VARIABLES``); and ``${X}``/``$X`` in the Dockerfile
and the production compose file. Variables read by libraries on their own
(``DJANGO_SETTINGS_MODULE``, ``PROMETHEUS_MULTIPROC_DIR``) are set in the source too.
"""

from __future__ import annotations

import re
from pathlib import Path

from apps.providers.bootstrap import ENV_VARIABLES

REPO = Path(__file__).resolve().parents[2]
NAME = r"([A-Z][A-Z0-9_]*)"
READS = [
    re.compile(rf"""\benv(?:\.\w+)?\(\s*["']{NAME}["']"""),
    re.compile(rf"""os\.environ(?:\.get|\.setdefault)?\s*[(\[]\s*["']{NAME}["']"""),
    re.compile(rf"""["']{NAME}["']\s+(?:not\s+)?in\s+os\.environ"""),
    re.compile(rf"""os\.getenv\(\s*["']{NAME}["']"""),
]
SHELL_VARIABLE = re.compile(r"\$\{?" + NAME)
LISTED = re.compile(rf"^#?\s*{NAME}=", re.MULTILINE)
# Set by the code for its children, never read from the operator's environment.
WRITTEN_ONLY = {"PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"}


def variables_read() -> set[str]:
    found = set(ENV_VARIABLES)
    sources = [*(REPO / "apps").rglob("*.py"), *(REPO / "orchestra").rglob("*.py")]
    for path in [*sources, REPO / "manage.py"]:
        text = path.read_text()
        for pattern in READS:
            found.update(pattern.findall(text))
    for path in (REPO / "Dockerfile", REPO / "docker-compose.prod.yml"):
        found.update(SHELL_VARIABLE.findall(path.read_text()))
    return found - WRITTEN_ONLY


def variables_listed() -> set[str]:
    return set(LISTED.findall((REPO / ".env.example").read_text()))


def test_the_search_finds_reads_of_every_kind():
    found = variables_read()
    assert {
        "SECRET_KEY",
        "DATABASE_POOL_MAX",
        "REDIS_URL",
        "ORCHESTRA_ADMIN_PASSWORD",
        "ORCHESTRA_PORT",
        "TEST_REDIS_DB",
        "WEB_WORKERS",
        "POSTGRES_PASSWORD",
        "OPENAI_API_KEY",
        "GROK_API_KEY",
    } <= found


def test_every_variable_the_code_reads_is_in_env_example():
    assert sorted(variables_read() - variables_listed()) == []


def test_env_example_lists_no_variable_the_code_does_not_read():
    assert sorted(variables_listed() - variables_read()) == []
