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
from django_filters import fields
from django_filters import rest_framework as filters

OFFSET_MIN = timedelta(hours=-12)
OFFSET_MAX = timedelta(hours=14)


class IsoDateTimeField(fields.IsoDateTimeField):
    def to_python(self, value: Any) -> datetime | None:
        parsed = super().to_python(value)
        if parsed is None or parsed.tzinfo is None:
            return parsed
        offset = parsed.utcoffset()
        if offset is not None and not OFFSET_MIN <= offset <= OFFSET_MAX:
            raise forms.ValidationError(
                "The UTC offset must be between -12:00 and +14:00.", code="invalid_offset"
            )
        return parsed.astimezone(UTC)


class IsoDateTimeRangeField(fields.RangeField):
    widget = fields.DateRangeWidget

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__((IsoDateTimeField(), IsoDateTimeField()), *args, **kwargs)


class DateTimeRangeFilter(filters.IsoDateTimeFromToRangeFilter):
    """``<name>_after`` / ``<name>_before``: ISO 8601 times, an offset from -12:00 to +14:00."""

    field_class = IsoDateTimeRangeField
