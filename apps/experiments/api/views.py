"""A/B experiments and canary rollouts (the ``/experiments`` paths under ``/api/v1/``).
Reads need the viewer role, writes (create, change, start, stop, track, canaries, settings)
the operator role (the default ``RolePermission``). What the state does not allow (starting a
stopped experiment) is a 409 ``conflict``; anything that needs the feature while it is switched
off is a 409 ``feature_disabled``."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.authentication import request_user
from apps.core.api.shortcuts import state_conflicts, validated

from ..filtersets import CanaryFilter, ExperimentFilter
from ..models import CanaryRollout, Experiment
from ..selectors import (
    canary_get,
    canary_list,
    experiment_get,
    experiment_list,
    experiment_settings_get,
    experiment_stats,
    experiments_health,
    experiments_summary,
)
from ..services import (
    FeatureDisabledError,
    canary_advance,
    canary_create,
    canary_rollback,
    conversion_track,
    experiment_create,
    experiment_settings_update,
    experiment_start,
    experiment_stop,
    experiment_update,
    experiment_variant_for_user,
    feedback_track,
)
from .serializers import (
    CanaryDetailOutputSerializer,
    CanaryInputSerializer,
    CanaryOutputSerializer,
    CanaryRollbackInputSerializer,
    ConversionInputSerializer,
    ExperimentDetailOutputSerializer,
    ExperimentHealthOutputSerializer,
    ExperimentInputSerializer,
    ExperimentOutputSerializer,
    ExperimentSettingsOutputSerializer,
    ExperimentStatsOutputSerializer,
    ExperimentSummaryOutputSerializer,
    ExperimentUpdateInputSerializer,
    FeedbackInputSerializer,
    SettingsInputSerializer,
    TrackedEventOutputSerializer,
    VariantAssignmentOutputSerializer,
)

ERROR = {"$ref": "#/components/schemas/Error"}
CONFLICT = OpenApiResponse(
    ERROR,
    description="The state does not allow it (conflict), or A/B testing is switched off "
    "(feature_disabled).",
)


# Besides the state's refusals (409 ``conflict``), the feature switched off is a 409 too.
REFUSALS: dict[type[Exception], str] = {FeatureDisabledError: "feature_disabled"}


def detail(experiment: Experiment, code: int = status.HTTP_200_OK) -> Response:
    fresh = experiment_list().prefetch_related("phases").get(pk=experiment.pk)
    return Response(ExperimentDetailOutputSerializer(fresh).data, status=code)


# --- experiments --------------------------------------------------------------------------


class ExperimentListCreateApi(ListAPIView):
    """``GET``: experiments, newest first, each with its variants. ``POST``: a draft experiment
    with its variants (a list; exactly one control; traffic percentages adding up to 100)."""

    serializer_class = ExperimentOutputSerializer
    filterset_class = ExperimentFilter

    def get_queryset(self) -> QuerySet[Experiment]:
        return experiment_list()

    @extend_schema(
        request=ExperimentInputSerializer, responses={201: ExperimentDetailOutputSerializer}
    )
    def post(self, request: Request) -> Response:
        data = validated(ExperimentInputSerializer, request)
        experiment = experiment_create(by=request_user(request), **data)
        return detail(experiment, status.HTTP_201_CREATED)


class ExperimentDetailApi(APIView):
    @extend_schema(responses=ExperimentDetailOutputSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return detail(experiment_get(pk=pk))

    @extend_schema(
        request=ExperimentUpdateInputSerializer,
        responses={200: ExperimentDetailOutputSerializer, 409: CONFLICT},
    )
    def patch(self, request: Request, pk: int) -> Response:
        experiment = experiment_get(pk=pk)
        data = validated(ExperimentUpdateInputSerializer, request)
        with state_conflicts(also=REFUSALS):
            experiment = experiment_update(experiment=experiment, **data)
        return detail(experiment)


class ExperimentStartApi(APIView):
    """Start a draft: requests naming it get their users' variants from now on."""

    @extend_schema(request=None, responses={200: ExperimentDetailOutputSerializer, 409: CONFLICT})
    def post(self, request: Request, pk: int) -> Response:
        with state_conflicts(also=REFUSALS):
            experiment = experiment_start(
                experiment=experiment_get(pk=pk), by=request_user(request)
            )
        return detail(experiment)


class ExperimentStopApi(APIView):
    """Stop and decide: a winner only when the difference is significant at the configured
    level; ``conclusion`` says what was found either way."""

    @extend_schema(request=None, responses={200: ExperimentDetailOutputSerializer, 409: CONFLICT})
    def post(self, request: Request, pk: int) -> Response:
        with state_conflicts(also=REFUSALS):
            experiment = experiment_stop(experiment=experiment_get(pk=pk), by=request_user(request))
        return detail(experiment)


class ExperimentVariantApi(APIView):
    """The variant a user gets (recorded as its assignment): the same one the user's requests
    naming the experiment get. ``assigned`` is false, with the reason, when the user gets the
    default config (outside the user percentage, the experiment not running, A/B testing off)."""

    @extend_schema(responses=VariantAssignmentOutputSerializer)
    def get(self, request: Request, pk: int, user_id: str) -> Response:
        answer = experiment_variant_for_user(experiment=experiment_get(pk=pk), user_id=user_id)
        variant = answer.variant
        body = {
            "experiment_id": answer.experiment.pk,
            "experiment_name": answer.experiment.name,
            "user_id": user_id,
            "variant_id": variant.pk if variant else None,
            "variant_name": variant.name if variant else None,
            "variant_config": variant.config if variant else {},
            "assigned": answer.assigned,
            "phase": answer.phase,
            "reason": answer.reason,
        }
        return Response(VariantAssignmentOutputSerializer(body).data)


class ConversionTrackApi(APIView):
    """A conversion of an assigned user (the primary metric), with an optional value."""

    @extend_schema(
        request=ConversionInputSerializer,
        responses={201: TrackedEventOutputSerializer, 409: CONFLICT},
    )
    def post(self, request: Request, pk: int) -> Response:
        experiment = experiment_get(pk=pk)
        data = validated(ConversionInputSerializer, request)
        with state_conflicts(also=REFUSALS):
            event = conversion_track(experiment=experiment, **data)
        return Response(TrackedEventOutputSerializer(event).data, status=status.HTTP_201_CREATED)


class FeedbackTrackApi(APIView):
    """A numeric feedback score of an assigned user."""

    @extend_schema(
        request=FeedbackInputSerializer,
        responses={201: TrackedEventOutputSerializer, 409: CONFLICT},
    )
    def post(self, request: Request, pk: int) -> Response:
        experiment = experiment_get(pk=pk)
        data = validated(FeedbackInputSerializer, request)
        with state_conflicts(also=REFUSALS):
            event = feedback_track(experiment=experiment, **data)
        return Response(TrackedEventOutputSerializer(event).data, status=status.HTTP_201_CREATED)


PHASE = OpenApiParameter("phase", int, description="A phase's number; the current one if left out.")


class ExperimentStatsApi(APIView):
    """Per variant in a phase: users, conversions (rate and Wilson interval), feedback, LLM
    calls (requests, success rate, latency p50/p95, tokens, cost, cost per successful answer);
    per treatment against the control: the difference with its interval and two-sided p-value,
    the chance to beat the control, guardrails; the sample-ratio-mismatch check; what stopping
    would decide; and every phase there is (``?phase=<number>`` gives an earlier one's)."""

    @extend_schema(parameters=[PHASE], responses=ExperimentStatsOutputSerializer)
    def get(self, request: Request, pk: int) -> Response:
        experiment = experiment_get(pk=pk)
        raw = request.query_params.get("phase")
        if raw is not None and not raw.isdigit():
            raise serializers.ValidationError({"phase": "A phase number."})
        stats = experiment_stats(experiment=experiment, phase_number=int(raw) if raw else None)
        if raw and stats["phase"] != int(raw):
            numbers = ", ".join(str(phase.number) for phase in stats["phases"]) or "none yet"
            raise serializers.ValidationError(
                {"phase": f"No phase {int(raw)}: this experiment's phases are {numbers}."}
            )
        return Response(ExperimentStatsOutputSerializer(stats).data)


class ExperimentSummaryApi(APIView):
    @extend_schema(responses=ExperimentSummaryOutputSerializer)
    def get(self, request: Request) -> Response:
        return Response(ExperimentSummaryOutputSerializer(experiments_summary()).data)


class ExperimentHealthApi(APIView):
    """The experiments service's health: ``unhealthy`` while a running experiment's
    assignment is skewed (sample ratio mismatch), ``disabled`` while A/B testing is off."""

    @extend_schema(responses=ExperimentHealthOutputSerializer)
    def get(self, request: Request) -> Response:
        return Response(ExperimentHealthOutputSerializer(experiments_health()).data)


class ExperimentSettingsApi(APIView):
    """The runtime settings: the ``ab_testing`` switch, the significance level, the guardrail
    margins and a new canary's defaults; every process follows a change within seconds."""

    @extend_schema(responses=ExperimentSettingsOutputSerializer)
    def get(self, request: Request) -> Response:
        return Response(ExperimentSettingsOutputSerializer(experiment_settings_get()).data)

    @extend_schema(request=SettingsInputSerializer, responses=ExperimentSettingsOutputSerializer)
    def patch(self, request: Request) -> Response:
        data = validated(SettingsInputSerializer, request)
        return Response(ExperimentSettingsOutputSerializer(experiment_settings_update(**data)).data)


# --- canaries ----------------------------------------------------------------------------------


class CanaryListCreateApi(ListAPIView):
    """``GET``: canary rollouts, newest first. ``POST``: roll a treatment out step by step
    (its first step at once; a draft experiment starts)."""

    serializer_class = CanaryOutputSerializer
    filterset_class = CanaryFilter

    def get_queryset(self) -> QuerySet[CanaryRollout]:
        return canary_list()

    @extend_schema(
        request=CanaryInputSerializer, responses={201: CanaryDetailOutputSerializer, 409: CONFLICT}
    )
    def post(self, request: Request) -> Response:
        data = validated(CanaryInputSerializer, request)
        with state_conflicts(also=REFUSALS):
            rollout = canary_create(by=request_user(request), **data)
        body = CanaryDetailOutputSerializer(canary_get(pk=rollout.pk)).data
        return Response(body, status=status.HTTP_201_CREATED)


class CanaryDetailApi(APIView):
    @extend_schema(responses=CanaryDetailOutputSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(CanaryDetailOutputSerializer(canary_get(pk=pk)).data)


class CanaryAdvanceApi(APIView):
    """Judge the canary now, as the schedule does: the next step, completion, rollback or
    nothing yet."""

    @extend_schema(request=None, responses=CanaryDetailOutputSerializer)
    def post(self, request: Request, pk: int) -> Response:
        canary_advance(rollout=canary_get(pk=pk))
        return Response(CanaryDetailOutputSerializer(canary_get(pk=pk)).data)


class CanaryRollbackApi(APIView):
    """Roll the treatment back to 0% by hand."""

    @extend_schema(
        request=CanaryRollbackInputSerializer,
        responses={200: CanaryDetailOutputSerializer, 409: CONFLICT},
    )
    def post(self, request: Request, pk: int) -> Response:
        rollout = canary_get(pk=pk)
        data = validated(CanaryRollbackInputSerializer, request)
        with state_conflicts(also=REFUSALS):
            canary_rollback(rollout=rollout, reason=data["reason"], by=request_user(request))
        return Response(CanaryDetailOutputSerializer(canary_get(pk=pk)).data)
