"""One migrated PostgreSQL database per test run, which every pytest-xdist worker's test
database is copied from (``CREATE DATABASE ... TEMPLATE``) instead of each worker migrating its
own: some 90 migrations, 6 to 8 s of CPU and a share of PostgreSQL's per worker, while the
workers' first tests wait.

The first worker to take the lock builds it (Django's own ``create_test_db``, as pytest-django
would); the others wait for it. A file in ``var/`` names the run that built it
(``PYTEST_XDIST_TESTRUNUID``), so a later run builds its own from its migrations. Each worker then
sets ``TEST["TEMPLATE"]``, and pytest-django creates its database from it; its ``migrate`` finds
nothing to apply.
"""

from __future__ import annotations

import fcntl
import os

from django.conf import settings
from django.db import connections

from tests.support.processes import REPO_ROOT


def use_a_template(alias: str = "default") -> None:
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    connection = connections[alias]
    if not run or connection.vendor != "postgresql":
        return
    settings_dict = connection.settings_dict
    test_settings = settings_dict.setdefault("TEST", {})
    worker_database = test_settings.get("NAME") or f"test_{settings_dict['NAME']}"
    template = worker_database.rsplit("_", 1)[0] + "_template"  # test_orchestra<id>_template
    folder = REPO_ROOT / "var"
    folder.mkdir(parents=True, exist_ok=True)
    built_by = folder / f"{template}.run"
    with open(folder / f"{template}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not built_by.exists() or built_by.read_text() != run:
            _build(alias, template)
            built_by.write_text(run)
    test_settings["TEMPLATE"] = template


def _build(alias: str, template: str) -> None:
    connection = connections[alias]
    name, test_name = connection.settings_dict["NAME"], connection.settings_dict["TEST"].get("NAME")
    connection.settings_dict["TEST"]["NAME"] = template
    try:
        connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    finally:
        connection.close()
        if hasattr(connection, "close_pool"):
            connection.close_pool()  # no session may stay in a database being copied
        for settings_dict in (connection.settings_dict, settings.DATABASES[alias]):
            settings_dict["NAME"] = name
            settings_dict.setdefault("TEST", {})["NAME"] = test_name
