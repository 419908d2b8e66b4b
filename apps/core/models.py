"""The core's tables: what start-up applied from the environment, and the platform's own
runtime settings.

``manage.py bootstrap_providers`` (and any later start-up step like it) takes settings from
environment variables once, then leaves them to the operators: it remembers, per setting, a
digest of the value it applied (never the value: some are API keys), and applies a value again
only when the environment's value has changed since (``apps.core.environment``).

``PlatformSettings`` is one row (the log level, the live log's level) that every process
applies without a restart (``apps.core.platform_settings``).
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


class LogLevel(models.TextChoices):
    DEBUG = "DEBUG", "Debug"
    INFO = "INFO", "Info"
    WARNING = "WARNING", "Warning"
    ERROR = "ERROR", "Error"
    CRITICAL = "CRITICAL", "Critical"


class PlatformSettings(models.Model):
    """A single row: applied by every process (web, Celery workers, beat) without a restart."""

    log_level = models.CharField(
        max_length=8,
        choices=LogLevel.choices,
        blank=True,
        default="",
        help_text="The level of the platform's log lines in every process; blank: the level "
        "each process started with (LOG_LEVEL).",
    )
    live_log_level = models.CharField(
        "Logs page level",
        max_length=8,
        choices=LogLevel.choices,
        blank=True,
        default="",
        help_text="The lowest level of the lines the dashboard's Logs page shows live, in every "
        "process; blank: LOG_LIVE_LEVEL (WARNING).",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "platform settings"
        verbose_name_plural = "platform settings"

    def __str__(self) -> str:
        return "Platform settings"


# The platform settings an operator edits (``platform_settings_update``, the admin, the dashboard).
PLATFORM_SETTINGS_FIELDS = ("log_level", "live_log_level")
