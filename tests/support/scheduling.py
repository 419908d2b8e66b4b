"""How pytest-xdist hands tests to its workers in ``make test``.

Each test goes to the next worker with room, in the order collected (``--dist load``), except
the tests of a module that defines a module-scoped fixture, or whose folder's ``conftest.py``
does (a server, a private PostgreSQL, a platform started from scratch): those go to one worker
together, which builds the fixture once. Spread over the workers, each built its own, up to
three times a module, seconds of CPU each. (pytest-xdist's ``xdist_group`` marker would say the
same per test, but pytest-xdist 3.8 cannot group under pytest 9.2: it renames the node ids
through an attribute pytest no longer reads.)
"""

from __future__ import annotations

from functools import cache

from xdist.scheduler import LoadScopeScheduling

from tests.support.processes import REPO_ROOT

MODULE_SCOPE = 'scope="module"'


@cache
def shares_module_fixtures(path: str) -> bool:
    """Whether the test module at ``path`` (relative to the repository) can use a module-scoped
    fixture of its own or of a ``conftest.py`` above it."""
    module = REPO_ROOT / path
    if not module.is_file():
        return False
    candidates = [module, *(folder / "conftest.py" for folder in module.parents)]
    return any(
        candidate.is_file()
        and candidate.is_relative_to(REPO_ROOT)
        and candidate != REPO_ROOT / "tests" / "conftest.py"  # its module fixtures are none
        and MODULE_SCOPE in candidate.read_text()
        for candidate in candidates
    )


class ModuleFixtureScheduling(LoadScopeScheduling):
    def _split_scope(self, nodeid: str) -> str:
        path = nodeid.split("::", 1)[0]
        return path if shares_module_fixtures(path) else nodeid
