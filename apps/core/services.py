"""Writes every app's services share."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from django.db import models, transaction

from .models import PLATFORM_SETTINGS_FIELDS, PlatformSettings
from .platform_settings import live_log_level_apply, log_level_apply, platform_settings_announce

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


# --- the platform's runtime settings ------------------------------------------------------------


def platform_settings_get() -> PlatformSettings:
    """The one settings row, created with the defaults on first use."""
    return PlatformSettings.objects.first() or PlatformSettings.objects.create()


@transaction.atomic
def platform_settings_update(**fields: Any) -> PlatformSettings:
    """Save, then (once committed) apply in this process and tell every other one."""
    row = instance_update(
        instance=platform_settings_get(), fields=PLATFORM_SETTINGS_FIELDS, data=fields
    )
    level, live_level = row.log_level, row.live_log_level
    transaction.on_commit(lambda: log_level_apply(level))
    transaction.on_commit(lambda: live_log_level_apply(live_level))
    transaction.on_commit(platform_settings_announce)
    return row
