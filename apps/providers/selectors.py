from __future__ import annotations

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from .models import LlmCall, LlmModel, Provider


def provider_list() -> QuerySet[Provider]:
    return Provider.objects.all()


def provider_get(*, pk: int) -> Provider:
    return get_object_or_404(Provider, pk=pk)


def provider_get_by_name(*, name: str) -> Provider:
    return get_object_or_404(Provider, name=name)


def model_list() -> QuerySet[LlmModel]:
    return LlmModel.objects.select_related("provider")


def model_get(*, pk: int) -> LlmModel:
    return get_object_or_404(model_list(), pk=pk)


def llm_call_list() -> QuerySet[LlmCall]:
    return LlmCall.objects.all()


def llm_call_get(*, pk) -> LlmCall:
    return get_object_or_404(LlmCall.objects.prefetch_related("attempts"), pk=pk)
