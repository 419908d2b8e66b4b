"""Tests that must have the machine to themselves under pytest-xdist (marker ``alone``).

Every test of a parallel run takes a shared turn around its setup, call and teardown; a test
marked ``alone`` takes an exclusive one, so it starts once the tests running on the other
workers have ended, and no other test starts before it ends. A gate lock in front keeps the
exclusive turn from waiting forever behind a stream of shared ones: a worker waiting for its
exclusive turn holds the gate, so the other workers stop at it instead of starting tests.
The locks are ``flock`` files in ``var/``, one pair per run (``ORCHESTRA_TEST_ID``); a serial
run (``-n 0``) takes no lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator

from tests.support.processes import REPO_ROOT


def _lock_path(kind: str) -> str:
    run = os.environ.get("ORCHESTRA_TEST_ID", "")
    folder = REPO_ROOT / "var"
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / f"test-alone{f'-{run}' if run else ''}.{kind}")


@contextlib.contextmanager
def turn(*, exclusive: bool) -> Iterator[None]:
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        yield
        return
    with open(_lock_path("gate"), "a") as gate, open(_lock_path("lock"), "a") as lock:
        fcntl.flock(gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        finally:
            fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
