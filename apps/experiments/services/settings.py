"""The experiment settings: the one row of defaults and margins, and its changes."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from apps.core.services import instance_update

from ..models import ExperimentSettings
from .canaries import canary_steps_validate
from .common import config_version_bump

SETTINGS_FIELDS = (
    "enabled", "significance_level", "error_rate_margin", "latency_margin", "cost_margin",
    "guardrail_min_calls", "latency_floor_ms", "canary_steps", "canary_step_interval_seconds",
    "canary_min_requests",
)  # fmt: skip


def experiment_settings_ensure() -> ExperimentSettings:
    """The one settings row, created with the defaults on first use."""
    return ExperimentSettings.objects.first() or ExperimentSettings.objects.create()


@transaction.atomic
def experiment_settings_update(**fields: Any) -> ExperimentSettings:
    if "canary_steps" in fields:
        canary_steps_validate(fields["canary_steps"], field="canary_steps")
    row = instance_update(
        instance=experiment_settings_ensure(), fields=SETTINGS_FIELDS, data=fields
    )
    config_version_bump()
    return row
