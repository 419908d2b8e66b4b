from __future__ import annotations

import math
from dataclasses import asdict

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.admission import KeyLimits, settle
from apps.accounts.authentication import request_api_key, request_user
from apps.accounts.permissions import CanOperate
from apps.accounts.selectors import workspace_id_for
from apps.accounts.throttles import ApiKeyLimitThrottle
from apps.core.errors import ServiceError
from apps.core.request_context import current_request_id
from apps.providers.llm import (
    Caller,
    EntryPoint,
    InvalidRequestError,
    ProviderError,
    complete_sync,
    llm_request_from,
)

from .serializers import QueryInputSerializer, QueryOutputSerializer


class RetryLaterError(ServiceError):
    """A provider-side 429 (every deployment waits): ``wait`` is sent as ``Retry-After``."""

    def __init__(self, error: ProviderError) -> None:
        super().__init__(error.code, error.message, 429)
        self.wait = max(1, math.ceil(error.retry_after or 1))


class QueryApi(APIView):
    """One completion through the LLM core, in our own JSON. The per-IP limit and then its API
    key's rate limits are checked before (``ApiKeyLimitThrottle``), and its tokens counted
    after."""

    permission_classes = [CanOperate]
    throttle_classes = [ApiKeyLimitThrottle]

    @extend_schema(request=QueryInputSerializer, responses=QueryOutputSerializer)
    def post(self, request: Request) -> Response:
        api_key = request_api_key(request)
        try:
            llm_request = llm_request_from(
                request.data,
                caller=Caller(
                    user_id=request.user.pk,
                    api_key_id=api_key.pk if api_key else None,
                    workspace_id=workspace_id_for(user=request_user(request), api_key=api_key),
                ),
                entry_point=EntryPoint.QUERY,
                request_id=current_request_id(),
                allow_prompt=True,
                user=request.headers.get("X-Orchestra-User"),
                tags=request.headers.get("X-Orchestra-Tags"),
            )
        except InvalidRequestError as error:
            raise serializers.ValidationError({error.param or "body": [error.message]}) from error
        try:
            completion = complete_sync(llm_request)
        except ProviderError as error:
            if error.status_for_client == 429:
                raise RetryLaterError(error) from error
            raise ServiceError(error.code, error.message, error.status_for_client) from error
        settle(KeyLimits.of(api_key), tokens=completion.usage.total_tokens)
        answer = {**asdict(completion), "id": completion.call_id}
        answer["usage"] = completion.usage.as_dict()
        return Response(QueryOutputSerializer(answer).data)
