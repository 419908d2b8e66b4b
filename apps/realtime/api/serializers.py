from typing import Any

from rest_framework import serializers

from apps.core.events import EventError, validate_event


class EventInputSerializer(serializers.Serializer):
    channel = serializers.CharField(max_length=64)
    event = serializers.CharField(max_length=64)
    data = serializers.JSONField()  # type: ignore[assignment]  # the JSON key; DRF keeps .data

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        try:
            validate_event(attrs["channel"], attrs["event"], attrs["data"])
        except EventError as error:
            raise serializers.ValidationError({"data": [str(error)]}) from error
        return attrs


class EventTypeOutputSerializer(serializers.Serializer):
    event = serializers.CharField()
    channel = serializers.CharField()
    fields = serializers.ListField(child=serializers.CharField())  # type: ignore[assignment]
    description = serializers.CharField()
