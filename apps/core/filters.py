"""Filters every list endpoint shares.

``DateTimeRangeFilter`` is django-filter's ``IsoDateTimeFromToRangeFilter`` (``<name>_after``,
``<name>_before``) with the UTC offset checked: Python parses any offset under 24 hours
(``+20:46``), PostgreSQL refuses any beyond 15:59 and answered a ``DataError`` (a 500). An
offset outside the ones in use on Earth (-12:00 to +14:00) is a 400 naming the parameter, and a
valid time is converted to UTC before it reaches the database.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django import forms
from django.utils.dateparse import parse_datetime
from django_filters import fields
from django_filters import rest_framework as filters
from rest_framework import serializers

OFFSET_MIN = timedelta(hours=-12)
OFFSET_MAX = timedelta(hours=14)


OFFSET_MESSAGE = "The UTC offset must be between -12:00 and +14:00."


def _offset_is_real(parsed: datetime) -> bool:
    offset = parsed.utcoffset()
    return offset is None or OFFSET_MIN <= offset <= OFFSET_MAX


class IsoDateTimeField(fields.IsoDateTimeField):
    def to_python(self, value: Any) -> datetime | None:
        parsed = super().to_python(value)
        if parsed is None or parsed.tzinfo is None:
            return parsed
        if not _offset_is_real(parsed):
            raise forms.ValidationError(OFFSET_MESSAGE, code="invalid_offset")
        return parsed.astimezone(UTC)


class DateTimeQueryField(serializers.DateTimeField):
    """A serializer's date-time query parameter with the same offset check (for a list whose
    filter is passed on, e.g. to GitHub, rather than applied by django-filter)."""

    def to_internal_value(self, value: Any) -> datetime:
        try:
            written = parse_datetime(value) if isinstance(value, str) else None
        except ValueError:  # well formed but no such time: the field's own error says so
            written = None
        if written is not None and written.tzinfo is not None and not _offset_is_real(written):
            raise serializers.ValidationError(OFFSET_MESSAGE, code="invalid_offset")
        return super().to_internal_value(value)


class IsoDateTimeRangeField(fields.RangeField):
    widget = fields.DateRangeWidget

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__((IsoDateTimeField(), IsoDateTimeField()), *args, **kwargs)


class DateTimeRangeFilter(filters.IsoDateTimeFromToRangeFilter):
    """``<name>_after`` / ``<name>_before``: ISO 8601 times, an offset from -12:00 to +14:00."""

    field_class = IsoDateTimeRangeField
