"""The console log (what ``make run``, uvicorn and workers print) carries no secret: a key in a
message, its arguments or a traceback comes out redacted, in both formats."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support.processes import REPO_ROOT

PLATFORM_KEY = "ao_0123abcd_" + "S3cretPart" * 3
PROVIDER_KEY = "sk-" + "providerSecret" * 2
SCRIPT = f"""
import logging
log = logging.getLogger("apps.example")
log.warning("calling with %s", "Authorization: Bearer {PROVIDER_KEY}")
try:
    raise RuntimeError("refused key {PLATFORM_KEY}")
except RuntimeError:
    log.exception("the call failed; api_key={PROVIDER_KEY}")
"""


def console_output(log_format: str) -> str:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "orchestra.settings.development",
        "LOG_FORMAT": log_format,
        "LOG_LEVEL": "INFO",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-v", "0", "-c", SCRIPT],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return result.stdout + result.stderr


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_console_lines_redact_keys_in_messages_arguments_and_tracebacks(log_format):
    output = console_output(log_format)

    assert "calling with" in output and "RuntimeError" in output  # both lines were written
    assert PROVIDER_KEY not in output
    assert "S3cretPart" not in output
    assert "ao_0123abcd_[redacted]" in output  # the key's public prefix stays, to tell keys apart
    assert "Bearer [redacted]" in output
    if log_format == "json":
        lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
        failed = next(line for line in lines if line["message"].startswith("the call failed"))
        assert failed["message"] == "the call failed; api_key=[redacted]"
        assert "refused key ao_0123abcd_[redacted]" in failed["exc_info"]
