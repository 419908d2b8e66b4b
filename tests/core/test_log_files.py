"""Log files with ``LOG_DIR``: every line in ``combined.log``, errors in ``error.log``, renamed
with their date at midnight by whichever process gets there first, 30 days kept."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time

from apps.core.logging import DailyLogFile
from tests.support.processes import REPO_ROOT

SCRIPT = """
import logging, django
django.setup()
log = logging.getLogger("apps.example")
log.info("an info line")
log.warning("a warning with sk-abcdefghijklmnop inside")
log.error("an error line")
"""


def test_a_process_with_log_dir_writes_the_combined_and_the_error_file(server_env, tmp_path):
    env = {**server_env, "LOG_DIR": str(tmp_path / "logs"), "LOG_LEVEL": "INFO"}
    subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=REPO_ROOT, check=True, timeout=60)

    def lines(name: str) -> list[dict]:
        text = (tmp_path / "logs" / name).read_text()
        return [json.loads(line) for line in text.splitlines() if '"apps.example"' in line]

    combined = lines("combined.log")
    assert [(line["level"], line["message"]) for line in combined] == [
        ("INFO", "an info line"),
        ("WARNING", "a warning with [redacted] inside"),
        ("ERROR", "an error line"),
    ]
    assert all("request_id" in line and "timestamp" in line for line in combined)
    assert [line["message"] for line in lines("error.log")] == ["an error line"]


def record(message: str) -> logging.LogRecord:
    return logging.LogRecord("t", logging.INFO, __file__, 1, message, None, None)


def test_two_processes_rolling_over_the_same_night_keep_every_line(tmp_path):
    path = tmp_path / "combined.log"
    first, second = DailyLogFile(str(path), days=30), DailyLogFile(str(path), days=30)
    first.emit(record("from the first, yesterday"))
    second.emit(record("from the second, yesterday"))
    yesterday = time.strftime(first.suffix, time.gmtime(first.rolloverAt - first.interval))
    dated = tmp_path / f"combined.log.{yesterday}"

    first.doRollover()  # midnight, as seen by the first process
    first.emit(record("from the first, today"))
    second.emit(record("from the second, before it noticed"))
    second.doRollover()  # the second finds the dated file there: it only reopens
    second.emit(record("from the second, today"))
    for handler in (first, second):
        handler.close()

    assert dated.read_text().splitlines() == [
        "from the first, yesterday",
        "from the second, yesterday",
        "from the second, before it noticed",
    ]
    assert path.read_text().splitlines() == ["from the first, today", "from the second, today"]
    assert first.rolloverAt > time.time() and second.rolloverAt > time.time()


def test_only_the_last_days_are_kept(tmp_path):
    path = tmp_path / "error.log"
    for day in range(1, 6):
        (tmp_path / f"error.log.2020-01-0{day}").write_text("old\n")
    handler = DailyLogFile(str(path), days=3)
    handler.emit(record("a line"))
    handler.doRollover()
    handler.close()
    kept = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("error.log."))
    assert len(kept) == 3 and "error.log.2020-01-01" not in kept
    assert kept[-1] > "error.log.2020"  # the day just rolled over is among them
