from __future__ import annotations

from rest_framework import serializers

from ..models import LogLevel, PlatformSettings


class PlatformSettingsOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = PlatformSettings
        fields = ["log_level", "live_log_level", "updated_at"]


class PlatformSettingsInputSerializer(serializers.Serializer):
    log_level = serializers.ChoiceField(
        choices=LogLevel.choices,
        required=False,
        allow_blank=True,
        help_text="Blank: the level each process started with (LOG_LEVEL).",
    )
    live_log_level = serializers.ChoiceField(
        choices=LogLevel.choices,
        required=False,
        allow_blank=True,
        help_text="The lowest level the dashboard's Logs page shows live; blank: LOG_LIVE_LEVEL.",
    )
