from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.events import event_type_list, publish

from .serializers import EventInputSerializer, EventTypeOutputSerializer


class EventApi(APIView):
    """The event types WebSocket subscribers can receive; admins may publish one (announcements,
    tests of the live pipeline)."""

    write_permission = "auth.change_user"

    @extend_schema(responses=EventTypeOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        types = [
            {
                "event": kind.name,
                "channel": kind.channel,
                "fields": list(kind.fields),
                "description": kind.description,
            }
            for kind in event_type_list()
        ]
        return Response(EventTypeOutputSerializer(types, many=True).data)

    @extend_schema(request=EventInputSerializer, responses={202: EventInputSerializer})
    def post(self, request: Request) -> Response:
        data = EventInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        publish(**data.validated_data)
        return Response(data.validated_data, status=status.HTTP_202_ACCEPTED)
