"""Writes every app's services share."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from django.db import models

M = TypeVar("M", bound=models.Model)


def instance_update(*, instance: M, fields: Iterable[str], data: Mapping[str, Any]) -> M:
    """Set those of the allowed ``fields`` that ``data`` holds, validate, save.

    The allow-list is explicit so that a new column is never writable by accident; ``data``
    naming a field outside it is a programming error.
    """
    allowed = set(fields)
    unexpected = sorted(set(data) - allowed)
    if unexpected:
        raise ValueError(f"cannot update {', '.join(unexpected)} of {type(instance).__name__}")
    for name, value in data.items():
        setattr(instance, name, value)
    instance.full_clean()
    instance.save()
    return instance
