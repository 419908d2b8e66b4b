"""Backups, for admins alone: ``GET /api/v1/backups`` lists them, ``POST`` queues one on a
worker, ``GET /api/v1/backups/<id>`` shows one with its log.

Every method needs ``backups.manage_backups``, which the admin role alone has (viewers' view
permissions do not reach it), and a person signed in: an API key is refused even when its
owner is an admin, so a leaked machine credential cannot set off or read backups."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.authentication import request_user

from ..models import MANAGE_PERMISSION, Backup
from ..selectors import backup_get, backup_list
from ..services import backup_request
from .serializers import BackupDetailOutputSerializer, BackupOutputSerializer

ERROR = {"$ref": "#/components/schemas/Error"}


class AdminsSignedIn(BasePermission):
    message = "Backups are for admins signed in (API keys may not run or read them)."

    def has_permission(self, request: Request, view: object) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if request.auth is not None:  # an API key (a session sets no auth)
            return False
        return bool(user.has_perm(MANAGE_PERMISSION))


class BackupListCreateApi(ListAPIView):
    """``GET``: backups, newest first. ``POST`` (no body): queue a backup; 202 with it."""

    serializer_class = BackupOutputSerializer
    permission_classes = [AdminsSignedIn]

    def get_queryset(self) -> QuerySet[Backup]:
        return backup_list()

    @extend_schema(
        request=None,
        responses={
            202: BackupDetailOutputSerializer,
            403: OpenApiResponse(ERROR, description="Not an admin signed in."),
        },
    )
    def post(self, request: Request) -> Response:
        backup = backup_request(by=request_user(request))
        return Response(
            BackupDetailOutputSerializer(backup_get(pk=backup.pk)).data,
            status=status.HTTP_202_ACCEPTED,
        )


class BackupDetailApi(APIView):
    permission_classes = [AdminsSignedIn]

    @extend_schema(responses=BackupDetailOutputSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(BackupDetailOutputSerializer(backup_get(pk=pk)).data)
