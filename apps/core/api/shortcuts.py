"""What every app's thin API views share: validated input, and a state refusal as a 409."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from django.core.exceptions import ValidationError
from rest_framework import serializers, status
from rest_framework.request import Request

from apps.core.errors import ServiceError


def validated(
    serializer_class: type[serializers.Serializer], request: Request, **kwargs: Any
) -> dict[str, Any]:
    """The request body checked by ``serializer_class``; a 400 in the one shape otherwise."""
    serializer = serializer_class(data=request.data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


@contextmanager
def state_conflicts(*, also: Mapping[type[Exception], str] | None = None) -> Iterator[None]:
    """A service's refusal that names no field (the object's state does not allow it: a
    finished build cancelled, a decided request decided again) is a 409 ``conflict``; one that
    names fields stays a 400. ``also`` maps an app's own refusals to the code of their 409 (a
    feature switched off: ``{FeatureDisabledError: "feature_disabled"}``)."""
    codes = dict(also or {})
    try:
        yield
    except ValidationError as error:
        if hasattr(error, "error_dict"):
            raise
        raise ServiceError(
            "conflict", " ".join(error.messages), status.HTTP_409_CONFLICT
        ) from error
    except tuple(codes) as error:
        code = next(code for kind, code in codes.items() if isinstance(error, kind))
        raise ServiceError(code, str(error), status.HTTP_409_CONFLICT) from error
