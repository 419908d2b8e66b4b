"""Shapes of the query API. The request is validated by the LLM core's own builder
(``llm_request_from``), so this API accepts exactly what the other entry points accept; the
input serializer documents the body."""

from __future__ import annotations

from rest_framework import serializers

from apps.providers.llm import (
    MAX_END_USER_LENGTH,
    MAX_TAG_VALUE_LENGTH,
    MAX_TAGS,
    ROLES,
    RoutingStrategy,
)


class MessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=sorted(ROLES))
    content = serializers.CharField(allow_blank=True, trim_whitespace=False)


class QueryInputSerializer(serializers.Serializer):
    messages = MessageSerializer(many=True, required=False, help_text="Or a prompt.")
    prompt = serializers.CharField(required=False, help_text="One user message.")
    model = serializers.CharField(required=False, max_length=200)
    provider = serializers.CharField(required=False, max_length=200)
    strategy = serializers.ChoiceField(choices=RoutingStrategy.choices, required=False)
    temperature = serializers.FloatField(required=False, min_value=0, max_value=2)
    top_p = serializers.FloatField(required=False, min_value=0, max_value=1)
    max_tokens = serializers.IntegerField(required=False, min_value=1, max_value=2**31 - 1)
    stop = serializers.ListField(child=serializers.CharField(), required=False, max_length=4)
    seed = serializers.IntegerField(required=False)
    presence_penalty = serializers.FloatField(required=False, min_value=-2, max_value=2)
    frequency_penalty = serializers.FloatField(required=False, min_value=-2, max_value=2)
    user = serializers.CharField(
        required=False,
        max_length=MAX_END_USER_LENGTH,
        help_text="The end user the call is made for (or the X-Orchestra-User header).",
    )
    tags = serializers.DictField(
        child=serializers.CharField(max_length=MAX_TAG_VALUE_LENGTH),
        required=False,
        help_text=f"At most {MAX_TAGS} tags recorded with the call, key to value (or the "
        "X-Orchestra-Tags header: k=v,k=v).",
    )


class UsageOutputSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    estimated = serializers.BooleanField()


class QueryOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField(help_text="The LLM call record.")
    content = serializers.CharField()
    provider = serializers.CharField()
    model = serializers.CharField()
    finish_reason = serializers.CharField()
    usage = UsageOutputSerializer()
    cost = serializers.DecimalField(max_digits=14, decimal_places=8)
    latency_ms = serializers.FloatField()
