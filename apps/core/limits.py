"""How much text a caller may write into one field, the same for every app's API: a bound on
each field keeps a single request from storing megabytes of text no page or model will read.
A build's input and rendered prompts have their own bound, ``PROMPT_MAX_BYTES``."""

from __future__ import annotations

import json
from typing import Any

TEXT_MAX_CHARS = 10_000  # descriptions, hypotheses, proposed actions
PROMPT_MAX_CHARS = 200_000  # prompts, system prompts, step prompt templates
JSON_MAX_BYTES = 64 * 1024  # a free-form JSON object, such as an approval's context


def json_size_error(value: Any) -> str | None:
    """Why ``value`` is too large as JSON (its compact UTF-8 encoding), or None."""
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    if size > JSON_MAX_BYTES:
        return f"At most {JSON_MAX_BYTES:,} bytes as JSON ({size:,} given)."
    return None
