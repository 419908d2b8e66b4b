"""Alerts: reads for the viewer role, acknowledging for operators. Notification channels:
admins only write them (the model permissions, which the operator role lacks); their URL is
write-only. A test sends at once and answers with its delivery."""

from __future__ import annotations

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView, RetrieveAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.authentication import request_user
from apps.core.api.shortcuts import state_conflicts, validated

from ..filtersets import AlertFilter
from ..models import Alert, NotificationChannel, NotificationDelivery
from ..selectors import alert_list, notification_channel_list, notification_delivery_list
from ..services import (
    alert_acknowledge,
    notification_channel_create,
    notification_channel_test,
    notification_channel_update,
)
from .serializers import (
    AlertOutputSerializer,
    NotificationChannelInputSerializer,
    NotificationChannelOutputSerializer,
    NotificationDeliveryOutputSerializer,
)

VIEW_CHANNELS = "alerts.view_notificationchannel"
ADD_CHANNELS = "alerts.add_notificationchannel"
CHANGE_CHANNELS = "alerts.change_notificationchannel"


class AlertListApi(ListAPIView):
    """Alerts, newest first; filter by ``status`` (open, acknowledged, resolved), ``severity``,
    ``kind``, ``cause``, ``raised_at``."""

    serializer_class = AlertOutputSerializer
    filterset_class = AlertFilter

    def get_queryset(self) -> QuerySet[Alert]:
        return alert_list()


class AlertDetailApi(RetrieveAPIView):
    serializer_class = AlertOutputSerializer

    def get_queryset(self) -> QuerySet[Alert]:
        return alert_list()


class AlertAcknowledgeApi(APIView):
    """An operator takes an open alert on (409 when it is not open)."""

    @extend_schema(request=None, responses=AlertOutputSerializer)
    def post(self, request: Request, pk: int) -> Response:
        alert = get_object_or_404(Alert, pk=pk)
        with state_conflicts():
            alert = alert_acknowledge(alert=alert, by=request_user(request))
        return Response(AlertOutputSerializer(alert).data)


class NotificationChannelListApi(APIView):
    read_permission = VIEW_CHANNELS
    write_permission = ADD_CHANNELS

    @extend_schema(responses=NotificationChannelOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        channels = notification_channel_list()
        return Response(NotificationChannelOutputSerializer(channels, many=True).data)

    @extend_schema(
        request=NotificationChannelInputSerializer, responses=NotificationChannelOutputSerializer
    )
    def post(self, request: Request) -> Response:
        channel = notification_channel_create(
            **validated(NotificationChannelInputSerializer, request)
        )
        return Response(
            NotificationChannelOutputSerializer(channel).data, status=status.HTTP_201_CREATED
        )


class NotificationChannelDetailApi(APIView):
    read_permission = VIEW_CHANNELS
    write_permission = CHANGE_CHANNELS

    @extend_schema(responses=NotificationChannelOutputSerializer)
    def get(self, request: Request, pk: int) -> Response:
        channel = get_object_or_404(NotificationChannel, pk=pk)
        return Response(NotificationChannelOutputSerializer(channel).data)

    @extend_schema(
        request=NotificationChannelInputSerializer, responses=NotificationChannelOutputSerializer
    )
    def patch(self, request: Request, pk: int) -> Response:
        channel = get_object_or_404(NotificationChannel, pk=pk)
        fields = validated(NotificationChannelInputSerializer, request, partial=True)
        channel = notification_channel_update(channel=channel, **fields)
        return Response(NotificationChannelOutputSerializer(channel).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        get_object_or_404(NotificationChannel, pk=pk).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class NotificationChannelTestApi(APIView):
    """Send a test notification to the channel now; the answer is its delivery (``sent``, or
    ``failed`` with the error)."""

    write_permission = CHANGE_CHANNELS

    @extend_schema(request=None, responses=NotificationDeliveryOutputSerializer)
    def post(self, request: Request, pk: int) -> Response:
        channel = get_object_or_404(NotificationChannel, pk=pk)
        delivery = notification_channel_test(channel=channel)
        return Response(NotificationDeliveryOutputSerializer(delivery).data)


class NotificationDeliveryListApi(ListAPIView):
    """The delivery log of one channel, newest first."""

    serializer_class = NotificationDeliveryOutputSerializer
    read_permission = "alerts.view_notificationdelivery"

    def get_queryset(self) -> QuerySet[NotificationDelivery]:
        if getattr(self, "swagger_fake_view", False):  # the schema's generation
            return NotificationDelivery.objects.none()
        channel = get_object_or_404(NotificationChannel, pk=self.kwargs["pk"])
        return notification_delivery_list(channel=channel)
