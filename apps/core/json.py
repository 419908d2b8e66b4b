"""Reading JSON from callers: every failure is a ``JsonError``, never a ``RecursionError``.

The standard library's decoder recurses once per nesting level, so a body of 100,000 ``[``
raises ``RecursionError`` (not a ``ValueError``), which escaped every reader that caught
``ValueError`` and became a 500 or a crashed WebSocket. ``loads`` turns it, and every other
decoding failure, into ``JsonError``; it also refuses documents nested deeper than
``MAX_DEPTH``, which parse but could still exhaust the stack of code that walks them later
(serializers, deep copies, the Celery message encoder). ``NaN`` and ``Infinity`` are refused:
they are not JSON. Neither is a NUL character (``\\u0000``) accepted in any string or key:
PostgreSQL cannot store one in text, and no caller's text needs one; ``NulCharacterError`` says
where it is (``steps.0.prompt``).

``JSONParser`` is DRF's, reading through the same rules: an unreadable body is a 400
``parse_error`` in the one error shape (``REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"]``), a NUL a
400 ``validation_error`` whose details name where it is. (DRF's ``CharField`` refuses NUL in
form data itself; this covers JSON fields and what services read from them, such as steps.)
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError, ValidationError

MAX_DEPTH = 128


class JsonError(ValueError):
    """The text is not JSON we accept; the message says why, for the caller."""


class NulCharacterError(JsonError):
    """A string or key holds ``\\u0000``; ``path`` names it (dotted, list items by index)."""

    def __init__(self, path: str) -> None:
        super().__init__(f"{path or 'the body'}: NUL characters (\\u0000) are not accepted")
        self.path = path


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
    if "\\u0000" in text:  # the only way JSON can hold a NUL (raw ones are refused)
        path = nul_path(value)
        if path is not None:
            raise NulCharacterError(path)
    return value


def nul_path(value: Any) -> str | None:
    """Where the first NUL character is in a JSON value, in document order (``""``: the value
    itself), or None."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return path
            continue
        if isinstance(item, dict):
            if any("\x00" in key for key in item):
                key = next(key for key in item if "\x00" in key)
                return _join(path, key).replace("\x00", "\\u0000")
            children = [(child, _join(path, key)) for key, child in item.items()]
        elif isinstance(item, list):
            children = [(child, _join(path, str(index))) for index, child in enumerate(item)]
        else:
            continue
        stack.extend(reversed(children))
    return None


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


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
        except NulCharacterError as exc:
            raise ValidationError({exc.path or "non_field_errors": [str(exc)]}) from None
        except (JsonError, UnicodeDecodeError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
