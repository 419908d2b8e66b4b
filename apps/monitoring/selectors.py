"""Reads of what the periodic health run kept."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import HealthCheckChange, HealthCheckState


def health_state_list() -> QuerySet[HealthCheckState]:
    return HealthCheckState.objects.order_by("check_name")


def health_change_list(*, check_name: str | None = None) -> QuerySet[HealthCheckChange]:
    """State changes, newest first; of one check when named."""
    changes = HealthCheckChange.objects.order_by("-changed_at", "-id")
    return changes.filter(check_name=check_name) if check_name else changes
