from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.errors import ServiceError

from ..filtersets import AgentActivityFilter, AgentFilter, AgentTaskFilter
from ..models import Agent, AgentActivity, AgentTask
from ..selectors import (
    agent_activity_list,
    agent_get,
    agent_list,
    agent_task_get,
    agent_task_list,
)
from ..services import (
    AgentTaskFinishedError,
    agent_create,
    agent_delete,
    agent_task_cancel,
    agent_task_create,
    agent_update,
)
from .serializers import (
    AgentActivityOutputSerializer,
    AgentInputSerializer,
    AgentOutputSerializer,
    AgentTaskInputSerializer,
    AgentTaskOutputSerializer,
)


def validated(
    serializer_class: type[serializers.Serializer], request: Request, **kwargs: Any
) -> dict[str, Any]:
    serializer = serializer_class(data=request.data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class AgentListCreateApi(ListAPIView):
    """Agents with their status, current task and performance; ``POST`` (operators) adds one."""

    serializer_class = AgentOutputSerializer
    filterset_class = AgentFilter
    pagination_class = None

    def get_queryset(self) -> QuerySet[Agent]:
        return agent_list()

    @extend_schema(request=AgentInputSerializer, responses={201: AgentOutputSerializer})
    def post(self, request: Request) -> Response:
        agent = agent_create(by=request.user, **validated(AgentInputSerializer, request))
        return Response(AgentOutputSerializer(agent).data, status=status.HTTP_201_CREATED)


class AgentDetailApi(APIView):
    @extend_schema(responses=AgentOutputSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(AgentOutputSerializer(agent_get(pk=pk)).data)

    @extend_schema(request=AgentInputSerializer, responses=AgentOutputSerializer)
    def patch(self, request: Request, pk: int) -> Response:
        agent = agent_get(pk=pk)
        data = validated(AgentInputSerializer, request, partial=True)
        return Response(AgentOutputSerializer(agent_update(agent=agent, **data)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        agent_delete(agent=agent_get(pk=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class AgentActivityListApi(ListAPIView):
    """The agent's activity log, newest first: tasks and build steps queued, started, retried,
    finished."""

    serializer_class = AgentActivityOutputSerializer
    filterset_class = AgentActivityFilter

    def get_queryset(self) -> QuerySet[AgentActivity]:
        if getattr(self, "swagger_fake_view", False):  # the OpenAPI schema's generation
            return AgentActivity.objects.none()
        return agent_activity_list(agent=agent_get(pk=self.kwargs["pk"]))


class AgentTaskListCreateApi(ListAPIView):
    """The agent's tasks, newest first; ``POST`` (operators) queues a prompt for it: 202 with
    the task, which a worker runs (follow it on the ``agents`` and ``agent_task:<id>``
    channels, or here)."""

    serializer_class = AgentTaskOutputSerializer
    filterset_class = AgentTaskFilter

    def get_queryset(self) -> QuerySet[AgentTask]:
        if getattr(self, "swagger_fake_view", False):  # the OpenAPI schema's generation
            return AgentTask.objects.none()
        return agent_task_list(agent=agent_get(pk=self.kwargs["pk"]))

    @extend_schema(request=AgentTaskInputSerializer, responses={202: AgentTaskOutputSerializer})
    def post(self, request: Request, pk: int) -> Response:
        data = validated(AgentTaskInputSerializer, request)
        task = agent_task_create(agent=agent_get(pk=pk), prompt=data["prompt"], by=request.user)
        return Response(AgentTaskOutputSerializer(task).data, status=status.HTTP_202_ACCEPTED)


class AgentTaskDetailApi(APIView):
    @extend_schema(responses=AgentTaskOutputSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(AgentTaskOutputSerializer(agent_task_get(pk=pk)).data)


class AgentTaskCancelApi(APIView):
    """Cancel a queued or running task (a running one stops within half a second, closing its
    provider request); 409 when it has already finished."""

    @extend_schema(request=None, responses={200: AgentTaskOutputSerializer})
    def post(self, request: Request, pk: int) -> Response:
        try:
            task = agent_task_cancel(task=agent_task_get(pk=pk), by=request.user)
        except AgentTaskFinishedError as error:
            raise ServiceError("conflict", str(error), status.HTTP_409_CONFLICT) from error
        return Response(AgentTaskOutputSerializer(task).data)
