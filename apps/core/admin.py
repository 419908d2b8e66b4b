from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from unfold.admin import ModelAdmin  # type: ignore[import-untyped]

from .models import PLATFORM_SETTINGS_FIELDS, PlatformSettings
from .services import platform_settings_update


@admin.register(PlatformSettings)
class PlatformSettingsAdmin(ModelAdmin):
    """A single row: applied by every process without a restart."""

    list_display = ["__str__", "log_level", "updated_at"]
    fields = [*PLATFORM_SETTINGS_FIELDS]

    def save_model(
        self, request: HttpRequest, obj: PlatformSettings, form: forms.ModelForm, change: bool
    ) -> None:
        """Through ``platform_settings_update``, which tells every process."""
        fields = {k: v for k, v in form.cleaned_data.items() if k in PLATFORM_SETTINGS_FIELDS}
        saved = platform_settings_update(**fields)
        obj.pk = saved.pk
        obj.refresh_from_db()
        obj._state.adding = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not PlatformSettings.objects.exists() and super().has_add_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
