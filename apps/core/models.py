"""The one table of the core: what start-up applied from the environment.

``manage.py bootstrap_providers`` (and any later start-up step like it) takes settings from
environment variables once, then leaves them to the operators: it remembers, per setting, a
digest of the value it applied (never the value: some are API keys), and applies a value again
only when the environment's value has changed since (``apps.core.environment``).
"""

from __future__ import annotations

from django.db import models


class AppliedSetting(models.Model):
    name = models.CharField(max_length=200, primary_key=True)
    digest = models.CharField(max_length=64, help_text="SHA-256 of the name and the value.")
    applied_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "setting applied from the environment"

    def __str__(self) -> str:
        return self.name
