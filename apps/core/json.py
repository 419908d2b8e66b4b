"""Reading JSON from callers: every failure is a ``JsonError``, never a ``RecursionError``.

The standard library's decoder recurses once per nesting level, so a body of 100,000 ``[``
raises ``RecursionError`` (not a ``ValueError``), which escaped every reader that caught
``ValueError`` and became a 500 or a crashed WebSocket. ``loads`` turns it, and every other
decoding failure, into ``JsonError``; it also refuses documents nested deeper than
``MAX_DEPTH``, which parse but could still exhaust the stack of code that walks them later
(serializers, deep copies, the Celery message encoder). ``NaN`` and ``Infinity`` are refused:
they are not JSON.

``JSONParser`` is DRF's, reading through the same rules: an unreadable body is a 400
``parse_error`` in the one error shape (``REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"]``).
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError

MAX_DEPTH = 128


class JsonError(ValueError):
    """The text is not JSON we accept; the message says why, for the caller."""


def _refuse_constant(name: str) -> Any:
    raise JsonError(f"{name} is not valid JSON")


def loads(raw: str | bytes | bytearray) -> Any:
    """Parse ``raw`` (bytes are decoded as UTF-8, -16 or -32, detected like ``json.loads``)."""
    try:
        text = raw if isinstance(raw, str) else raw.decode(json.detect_encoding(raw))
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise JsonError(f"nested deeper than {MAX_DEPTH} levels") from None
    except JsonError:
        raise
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise JsonError(str(exc)) from None
    if _may_be_deep(text) and depth_exceeds(value, MAX_DEPTH):
        raise JsonError(f"nested deeper than {MAX_DEPTH} levels")
    return value


_NOT_BRACKET_BYTES = bytes(set(range(256)) - set(b"[]{}"))


def _may_be_deep(text: str) -> bool:
    """A cheap upper bound on the nesting, from the brackets alone: peel off innermost pairs
    once per level. Brackets inside strings can only make it answer True, never hide depth."""
    # In UTF-8 no other character has a byte equal to a bracket's.
    brackets = text.encode("utf-8", "surrogatepass").translate(None, _NOT_BRACKET_BYTES)
    for _ in range(MAX_DEPTH):
        peeled = brackets.replace(b"[]", b"").replace(b"{}", b"")
        if not peeled:
            return False
        if peeled == brackets:
            return True  # unbalanced: brackets inside strings; walk the value instead
        brackets = peeled
    return True


def depth_exceeds(value: Any, limit: int) -> bool:
    """True when containers nest more than ``limit`` levels deep (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser through ``loads``: any unreadable body is a 400 ``parse_error``."""

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return loads(stream.read().decode(encoding))
        except (JsonError, UnicodeDecodeError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
