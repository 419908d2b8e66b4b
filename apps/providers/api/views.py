from __future__ import annotations

from dataclasses import asdict

from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.authentication import request_api_key
from apps.accounts.permissions import CanOperate
from apps.core.request_context import current_request_id

from ..core import Caller, LlmRequest
from ..errors import ProviderError
from ..models import EntryPoint, LlmCall
from ..selectors import (
    llm_call_get,
    llm_call_list,
    model_get,
    model_list,
    provider_get,
    provider_get_by_name,
    provider_list,
)
from ..services import (
    circuit_breaker_list,
    circuit_breaker_reset,
    llm_query,
    model_create,
    model_delete,
    model_update,
    provider_create,
    provider_delete,
    provider_probe,
    provider_sync_models,
    provider_update,
    routing_settings_get,
    routing_settings_update,
)
from .serializers import (
    BreakerOutputSerializer,
    LlmCallDetailOutputSerializer,
    LlmCallOutputSerializer,
    ModelInputSerializer,
    ModelOutputSerializer,
    ProviderHealthOutputSerializer,
    ProviderInputSerializer,
    ProviderOutputSerializer,
    QueryInputSerializer,
    QueryOutputSerializer,
    RoutingSettingsSerializer,
    SyncResultOutputSerializer,
)


class ProviderApiError(APIException):
    """A provider's failure, told to our caller in the one error shape."""

    def __init__(self, error: ProviderError) -> None:
        super().__init__(detail=error.message, code=error.code)
        self.status_code = error.status_for_client


def validated(serializer_class, request: Request, **kwargs) -> dict:
    serializer = serializer_class(data=request.data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


# --- providers --------------------------------------------------------------------------------


class ProviderListCreateApi(APIView):
    @extend_schema(responses=ProviderOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(ProviderOutputSerializer(provider_list(), many=True).data)

    @extend_schema(request=ProviderInputSerializer, responses={201: ProviderOutputSerializer})
    def post(self, request: Request) -> Response:
        provider = provider_create(**validated(ProviderInputSerializer, request))
        return Response(ProviderOutputSerializer(provider).data, status=status.HTTP_201_CREATED)


class ProviderDetailApi(APIView):
    @extend_schema(responses=ProviderOutputSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(ProviderOutputSerializer(provider_get(pk=pk)).data)

    @extend_schema(request=ProviderInputSerializer, responses=ProviderOutputSerializer)
    def patch(self, request: Request, pk: int) -> Response:
        provider = provider_get(pk=pk)
        data = validated(ProviderInputSerializer, request, instance=provider, partial=True)
        return Response(ProviderOutputSerializer(provider_update(provider=provider, **data)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        provider_delete(provider=provider_get(pk=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ProviderHealthApi(APIView):
    """Probes the provider now (lists its models) and returns the result with its circuit."""

    @extend_schema(responses=ProviderHealthOutputSerializer)
    def get(self, request: Request, pk: int) -> Response:
        provider = provider_probe(provider=provider_get(pk=pk))
        circuit = next(v for v in circuit_breaker_list() if v.provider == provider.name)
        data = {"provider": provider, "circuit": asdict(circuit)}
        return Response(ProviderHealthOutputSerializer(data).data)


class ProviderSyncModelsApi(APIView):
    @extend_schema(request=None, responses=SyncResultOutputSerializer)
    def post(self, request: Request, pk: int) -> Response:
        try:
            result = provider_sync_models(provider=provider_get(pk=pk))
        except ProviderError as error:
            raise ProviderApiError(error) from error
        return Response(SyncResultOutputSerializer(asdict(result)).data)


# --- models -----------------------------------------------------------------------------------


class ModelFilter(filters.FilterSet):
    class Meta:
        model = ModelOutputSerializer.Meta.model
        fields = ["provider", "enabled", "name"]


class ModelListCreateApi(ListAPIView):
    serializer_class = ModelOutputSerializer
    filterset_class = ModelFilter
    pagination_class = None

    def get_queryset(self):
        return model_list()

    @extend_schema(request=ModelInputSerializer, responses={201: ModelOutputSerializer})
    def post(self, request: Request) -> Response:
        model = model_create(**validated(ModelInputSerializer, request))
        return Response(ModelOutputSerializer(model).data, status=status.HTTP_201_CREATED)


class ModelDetailApi(APIView):
    @extend_schema(responses=ModelOutputSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(ModelOutputSerializer(model_get(pk=pk)).data)

    @extend_schema(request=ModelInputSerializer, responses=ModelOutputSerializer)
    def patch(self, request: Request, pk: int) -> Response:
        model = model_get(pk=pk)
        data = validated(ModelInputSerializer, request, instance=model, partial=True)
        return Response(ModelOutputSerializer(model_update(model=model, **data)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        model_delete(model=model_get(pk=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- routing settings and circuit breakers ----------------------------------------------------


class RoutingSettingsApi(APIView):
    """The router's runtime settings; a change applies in every process without a restart."""

    @extend_schema(responses=RoutingSettingsSerializer)
    def get(self, request: Request) -> Response:
        return Response(RoutingSettingsSerializer(routing_settings_get()).data)

    @extend_schema(request=RoutingSettingsSerializer, responses=RoutingSettingsSerializer)
    def patch(self, request: Request) -> Response:
        data = validated(
            RoutingSettingsSerializer, request, instance=routing_settings_get(), partial=True
        )
        return Response(RoutingSettingsSerializer(routing_settings_update(**data)).data)


class CircuitBreakerListApi(APIView):
    @extend_schema(responses=BreakerOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        views = [asdict(view) for view in circuit_breaker_list()]
        return Response(BreakerOutputSerializer(views, many=True).data)


class CircuitBreakerResetApi(APIView):
    @extend_schema(request=None, responses=BreakerOutputSerializer)
    def post(self, request: Request, name: str) -> Response:
        view = circuit_breaker_reset(provider=provider_get_by_name(name=name))
        return Response(BreakerOutputSerializer(asdict(view)).data)


# --- queries and their records ----------------------------------------------------------------


class QueryApi(APIView):
    """One completion through the LLM core, in our own JSON."""

    permission_classes = [CanOperate]

    @extend_schema(request=QueryInputSerializer, responses=QueryOutputSerializer)
    def post(self, request: Request) -> Response:
        data = validated(QueryInputSerializer, request)
        api_key = request_api_key(request)
        llm_request = LlmRequest(
            messages=data["messages"],
            model=data.get("model", ""),
            provider=data.get("provider", ""),
            strategy=data.get("strategy", ""),
            params={
                k: data[k] for k in ("temperature", "top_p", "max_tokens", "stop") if k in data
            },
            caller=Caller(user_id=request.user.pk, api_key_id=api_key.pk if api_key else None),
            entry_point=EntryPoint.QUERY,
            request_id=current_request_id(),
        )
        try:
            completion = llm_query(request=llm_request)
        except ProviderError as error:
            raise ProviderApiError(error) from error
        answer = {**asdict(completion), "id": completion.call_id}
        answer["usage"] = completion.usage.as_dict()
        return Response(QueryOutputSerializer(answer).data)


class LlmCallFilter(filters.FilterSet):
    created_at = filters.IsoDateTimeFromToRangeFilter()

    class Meta:
        model = LlmCall
        fields = ["provider_name", "model_name", "status", "entry_point", "stream", "user"]


class LlmCallListApi(ListAPIView):
    serializer_class = LlmCallOutputSerializer
    filterset_class = LlmCallFilter

    def get_queryset(self):
        return llm_call_list()


class LlmCallDetailApi(APIView):
    @extend_schema(responses=LlmCallDetailOutputSerializer)
    def get(self, request: Request, pk) -> Response:
        return Response(LlmCallDetailOutputSerializer(llm_call_get(pk=pk)).data)
