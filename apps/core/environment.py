"""Settings taken from the environment at start-up, applied once each (``models.AppliedSetting``).

A setting is applied when the environment gives it a value that differs from the one applied
last time (or none was): so running the start-up twice changes nothing, an operator's later
edit stands until the environment's value itself changes, and a variable that is removed
changes nothing (its record is forgotten, so setting it again applies it again).
"""

from __future__ import annotations

import hashlib

from .models import AppliedSetting


def value_digest(name: str, value: str) -> str:
    return hashlib.sha256(f"{name}\0{value}".encode()).hexdigest()


class AppliedSettings:
    """What was applied before, read once; ``remember``/``forget`` write through."""

    def __init__(self) -> None:
        self._digests = dict(AppliedSetting.objects.values_list("name", "digest"))

    def changed(self, name: str, value: str) -> bool:
        """Whether ``value`` differs from the one last applied to the setting ``name``."""
        return self._digests.get(name) != value_digest(name, value)

    def remember(self, name: str, value: str) -> None:
        digest = value_digest(name, value)
        if self._digests.get(name) != digest:
            AppliedSetting.objects.update_or_create(name=name, defaults={"digest": digest})
            self._digests[name] = digest

    def forget(self, name: str) -> None:
        if self._digests.pop(name, None) is not None:
            AppliedSetting.objects.filter(name=name).delete()
