from rest_framework import serializers

from ..events import EVENT_TYPES, EventError, validate_event


class EventInputSerializer(serializers.Serializer):
    channel = serializers.CharField(max_length=64)
    event = serializers.ChoiceField(choices=sorted(EVENT_TYPES))
    data = serializers.JSONField()

    def validate(self, attrs: dict) -> dict:
        try:
            validate_event(attrs["channel"], attrs["event"], attrs["data"])
        except EventError as error:
            raise serializers.ValidationError({"data": [str(error)]}) from error
        return attrs


class EventTypeOutputSerializer(serializers.Serializer):
    event = serializers.CharField()
    channel = serializers.CharField()
    fields = serializers.ListField(child=serializers.CharField())
    description = serializers.CharField()
