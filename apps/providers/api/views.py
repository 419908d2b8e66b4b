from __future__ import annotations

from dataclasses import asdict
from uuid import UUID

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api.shortcuts import validated
from apps.core.errors import ServiceError

from ..filtersets import LlmCallFilter, LlmModelFilter
from ..llm.errors import ProviderError
from ..models import LlmCall, LlmModel, Provider
from ..selectors import (
    CallFilters,
    circuit_breaker_list,
    llm_call_get,
    llm_call_list,
    model_get,
    model_list,
    provider_get,
    provider_get_by_name,
    provider_list,
)
from ..services import (
    circuit_breaker_reset,
    model_create,
    model_delete,
    model_update,
    provider_create,
    provider_delete,
    provider_probe,
    provider_sync_models,
    provider_test,
    provider_update,
    routing_settings_get,
    routing_settings_update,
)
from .pagination import CallPagination
from .serializers import (
    BreakerOutputSerializer,
    ConnectionTestOutputSerializer,
    LlmCallDetailOutputSerializer,
    LlmCallOutputSerializer,
    ModelInputSerializer,
    ModelOutputSerializer,
    ProviderHealthOutputSerializer,
    ProviderInputSerializer,
    ProviderOutputSerializer,
    RoutingSettingsInputSerializer,
    RoutingSettingsOutputSerializer,
    SyncResultOutputSerializer,
)

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
        data = validated(ProviderInputSerializer, request, partial=True)
        return Response(ProviderOutputSerializer(provider_update(provider=provider, **data)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        provider_delete(provider=provider_get(pk=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ProviderHealthApi(APIView):
    """``GET``: the last probe's result (stored) and the circuit, without calling the provider;
    ``POST`` (operators): probe now (list its models), store the result, return the same."""

    @extend_schema(responses=ProviderHealthOutputSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return self.health(provider_get(pk=pk))

    @extend_schema(request=None, responses=ProviderHealthOutputSerializer)
    def post(self, request: Request, pk: int) -> Response:
        return self.health(provider_probe(provider=provider_get(pk=pk)))

    def health(self, provider: Provider) -> Response:
        (circuit,) = circuit_breaker_list(names=[provider.name])
        data = {"provider": provider, "circuit": asdict(circuit)}
        return Response(ProviderHealthOutputSerializer(data).data)


class ProviderTestApi(APIView):
    """Try the provider now: the URL tried, the latency, the models it lists, or the exact
    error (refused, DNS, TLS, 401, timeout). Changes nothing."""

    @extend_schema(request=None, responses=ConnectionTestOutputSerializer)
    def post(self, request: Request, pk: int) -> Response:
        result = provider_test(provider=provider_get(pk=pk))
        return Response(ConnectionTestOutputSerializer(asdict(result)).data)


class ProviderSyncModelsApi(APIView):
    @extend_schema(request=None, responses=SyncResultOutputSerializer)
    def post(self, request: Request, pk: int) -> Response:
        try:
            result = provider_sync_models(provider=provider_get(pk=pk))
        except ProviderError as error:
            raise ServiceError(error.code, error.message, error.status_for_client) from error
        return Response(SyncResultOutputSerializer(asdict(result)).data)


# --- models -----------------------------------------------------------------------------------


class ModelListCreateApi(ListAPIView):
    serializer_class = ModelOutputSerializer
    filterset_class = LlmModelFilter
    pagination_class = None

    def get_queryset(self) -> QuerySet[LlmModel]:
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
        data = validated(ModelInputSerializer, request, partial=True)
        return Response(ModelOutputSerializer(model_update(model=model, **data)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        model_delete(model=model_get(pk=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- routing settings and circuit breakers ----------------------------------------------------


class RoutingSettingsApi(APIView):
    """The router's runtime settings; a change applies in every process without a restart."""

    @extend_schema(responses=RoutingSettingsOutputSerializer)
    def get(self, request: Request) -> Response:
        return Response(RoutingSettingsOutputSerializer(routing_settings_get()).data)

    @extend_schema(
        request=RoutingSettingsInputSerializer, responses=RoutingSettingsOutputSerializer
    )
    def patch(self, request: Request) -> Response:
        data = validated(RoutingSettingsInputSerializer, request, partial=True)
        return Response(RoutingSettingsOutputSerializer(routing_settings_update(**data)).data)


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


# --- call records ----------------------------------------------------------------------------


class LlmCallListApi(ListAPIView):
    """Newest first; pages by ``cursor`` (the ``next`` and ``previous`` links), ``page`` or
    ``offset``; ``count`` is estimated above 1,000 calls (``count_exact`` says which)."""

    serializer_class = LlmCallOutputSerializer
    filterset_class = LlmCallFilter
    pagination_class = CallPagination

    def get_queryset(self) -> QuerySet[LlmCall]:
        return llm_call_list()

    def call_filters(self) -> CallFilters | None:
        """What the listed calls are: every call (``get_queryset``) narrowed by these filters
        alone, which lets a deep offset seek its hour by counts of them (the pagination)."""
        filterset = LlmCallFilter(self.request.query_params, request=self.request)
        return filterset.call_filters() if filterset.is_valid() else None


class LlmCallDetailApi(APIView):
    @extend_schema(responses=LlmCallDetailOutputSerializer)
    def get(self, request: Request, pk: UUID) -> Response:
        return Response(LlmCallDetailOutputSerializer(llm_call_get(pk=pk)).data)
