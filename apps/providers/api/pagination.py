"""Pages of the call records (``/api/v1/llm-calls``) at any table size.

Newest first, ordered by ``(created_at, id)`` (one index). Three ways to ask for a page:
``cursor`` (the ``next`` and ``previous`` links: keyset, as fast on the millionth page as on
the first), ``page`` (1, 2, ...; ``limit`` calls each) and ``offset``; the last two skip the
rows before the page, read from the index alone when the list is unfiltered, and past the first
thousand first find the hour holding the page by the calls' counts per day and hour
(``selectors.llm_call_seek``), then skip only within that hour. ``count`` is
exact only when ``count_exact`` says so: above a thousand calls it is the database planner's
estimate (an exact count would read every row counted).
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime
from typing import Any, cast

from django.conf import settings
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

from ..models import LlmCall
from ..selectors import (
    CALL_ORDER,
    SEEK_FROM,
    llm_call_after,
    llm_call_before,
    llm_call_count,
    llm_call_page,
)

MAX_LIMIT = 1000
POSITION = ("cursor", "page", "offset")


MAX_POSITION = 10**12  # a page or offset past it is a 400 (the database's OFFSET is 64-bit)


def _number(request: Request, name: str, default: int, minimum: int) -> int:
    text = request.query_params.get(name)
    if text in (None, ""):
        return default
    message = f"A whole number from {minimum} to {MAX_POSITION:,}."
    try:
        value = int(text)
    except ValueError:
        raise ValidationError({name: [message]}) from None
    if not minimum <= value <= MAX_POSITION:
        raise ValidationError({name: [message]})
    return value


def encode_cursor(call: LlmCall, direction: str) -> str:
    data = {"t": call.created_at.isoformat(), "i": str(call.pk), "d": direction}
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def decode_cursor(token: str) -> tuple[datetime, uuid.UUID, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        found = datetime.fromisoformat(data["t"]), uuid.UUID(data["i"]), data["d"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise ValidationError({"cursor": ["Not a cursor this list gave."]}) from None
    if found[2] not in ("next", "previous") or found[0].tzinfo is None:
        raise ValidationError({"cursor": ["Not a cursor this list gave."]})
    return found


class CallPagination(BasePagination):
    """``count``, ``count_exact``, ``next``, ``previous`` and ``results`` (see the module)."""

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> list[Any]:
        self.request = request
        default = cast(int, settings.REST_FRAMEWORK["PAGE_SIZE"])
        limit = min(_number(request, "limit", default, 1), MAX_LIMIT)
        self.limit = limit
        self.offset: int | None = None
        self.previous_cursor: LlmCall | None = None
        self.next_cursor: LlmCall | None = None
        token = request.query_params.get("cursor")
        if token:
            created_at, pk, direction = decode_cursor(token)
            if direction == "next":
                after = llm_call_after(calls=queryset, created_at=created_at, pk=pk)
                rows = list(after.order_by(*CALL_ORDER)[: limit + 1])
                more, rows = len(rows) > limit, rows[:limit]
                self.next_cursor = rows[-1] if more else None
                self.previous_cursor = rows[0] if rows else None
            else:
                before = llm_call_before(calls=queryset, created_at=created_at, pk=pk)
                oldest_first = [name.removeprefix("-") for name in CALL_ORDER]
                rows = list(before.order_by(*oldest_first)[: limit + 1])
                more, rows = len(rows) > limit, rows[:limit][::-1]
                self.previous_cursor = rows[0] if more else None
                self.next_cursor = rows[-1] if rows else None
        else:
            page = _number(request, "page", 0, 1)
            offset = (page - 1) * limit if page else _number(request, "offset", 0, 0)
            self.offset = offset
            # The view's filters, for a deep offset to seek its hour (``llm_call_seek``).
            seeking = offset >= SEEK_FROM and hasattr(view, "call_filters")
            filters = view.call_filters() if seeking else None
            rows = llm_call_page(calls=queryset, offset=offset, limit=limit + 1, filters=filters)
            more, rows = len(rows) > limit, rows[:limit]
            self.next_cursor = rows[-1] if more else None
        self.count, self.count_exact = llm_call_count(calls=queryset)
        return rows

    def _url(self, **params: Any) -> str:
        url = self.request.build_absolute_uri()
        for name in POSITION:
            url = remove_query_param(url, name)
        for name, value in params.items():
            url = replace_query_param(url, name, value)
        return url

    def next_link(self) -> str | None:
        if self.next_cursor is None:
            return None
        return self._url(cursor=encode_cursor(self.next_cursor, "next"))

    def previous_link(self) -> str | None:
        if self.offset is not None:  # a page asked by page or offset: the one before it
            if self.offset <= 0:
                return None
            if "page" in self.request.query_params:
                return self._url(page=self.offset // self.limit)
            return self._url(offset=max(self.offset - self.limit, 0))
        if self.previous_cursor is None:
            return None
        return self._url(cursor=encode_cursor(self.previous_cursor, "previous"))

    def get_paginated_response(self, data: Any) -> Response:
        return Response(
            {
                "count": self.count,
                "count_exact": self.count_exact,
                "next": self.next_link(),
                "previous": self.previous_link(),
                "results": data,
            }
        )

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["count", "count_exact", "next", "previous", "results"],
            "properties": {
                "count": {
                    "type": "integer",
                    "description": "How many calls match: exact when count_exact, else the "
                    "database's estimate.",
                },
                "count_exact": {
                    "type": "boolean",
                    "description": "Whether count is exact (at most 1,000 calls, or not "
                    "PostgreSQL) or estimated.",
                },
                "next": {
                    "type": "string",
                    "format": "uri",
                    "nullable": True,
                    "description": "The next page (newer to older), by cursor.",
                },
                "previous": {
                    "type": "string",
                    "format": "uri",
                    "nullable": True,
                    "description": "The page before, by cursor (or page or offset when this "
                    "page was asked so).",
                },
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        def parameter(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
            return {
                "name": name,
                "required": False,
                "in": "query",
                "description": description,
                "schema": schema,
            }

        return [
            parameter(
                "limit",
                f"Calls per page (default {settings.REST_FRAMEWORK['PAGE_SIZE']}, at most "
                f"{MAX_LIMIT}).",
                {"type": "integer", "minimum": 1},
            ),
            parameter(
                "cursor",
                "A position from a next or previous link (keyset: newest first by "
                "created_at, then id).",
                {"type": "string"},
            ),
            parameter(
                "page",
                "The page number, from 1 (limit calls a page).",
                {"type": "integer", "minimum": 1},
            ),
            parameter(
                "offset",
                "How many calls to skip (page and cursor take precedence).",
                {"type": "integer", "minimum": 0},
            ),
        ]
