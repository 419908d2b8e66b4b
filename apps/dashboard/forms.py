from __future__ import annotations

import logging
from typing import Any

from django import forms
from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from unfold.forms import AuthenticationForm  # type: ignore[import-untyped]
from unfold.overrides import FORMFIELD_OVERRIDES  # type: ignore[import-untyped]
from unfold.widgets import UnfoldAdminSelectWidget  # type: ignore[import-untyped]

from apps.core.models import PLATFORM_SETTINGS_FIELDS, LogLevel, PlatformSettings
from apps.core.platform_settings import started_log_level
from apps.providers.models import ROUTING_SETTINGS_FIELDS, RoutingSettings


class LoginForm(AuthenticationForm):
    """Unfold's login form, whose refusal names what this site wants: an account with a role
    (Django's says "a staff account", which is how a role lets a person in)."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": _(
            "Please enter the correct username and password of an account with a role "
            "(viewer, operator or admin). Both fields may be case-sensitive."
        ),
    }


def unfold_formfield(field: models.Field, **kwargs: Any) -> forms.Field | None:
    """A model field's form field with unfold's widget, as unfold's ModelAdmin gives it."""
    if field.choices or isinstance(field, models.ForeignKey):
        kwargs["widget"] = UnfoldAdminSelectWidget
    else:
        for kind in type(field).__mro__:
            if kind in FORMFIELD_OVERRIDES:
                kwargs = {**FORMFIELD_OVERRIDES[kind], **kwargs}
                break
    return field.formfield(**kwargs)


class RoutingSettingsForm(forms.ModelForm):
    """The routing settings the page edits; saved through ``routing_settings_update``."""

    class Meta:
        model = RoutingSettings
        fields = ROUTING_SETTINGS_FIELDS
        formfield_callback = unfold_formfield


class PlatformSettingsForm(forms.ModelForm):
    """The log level and the live log's; saved through ``platform_settings_update``."""

    class Meta:
        model = PlatformSettings
        fields = PLATFORM_SETTINGS_FIELDS
        formfield_callback = unfold_formfield

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        started = logging.getLevelName(started_log_level())
        field = self.fields["log_level"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [("", f"As started ({started})"), *LogLevel.choices]
        live = self.fields["live_log_level"]
        assert isinstance(live, forms.ChoiceField)
        live.choices = [("", f"As configured ({settings.LOG_LIVE_LEVEL})"), *LogLevel.choices]
