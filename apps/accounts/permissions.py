from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

VIEW = "accounts.view_platform"
OPERATE = "accounts.operate_platform"


class RolePermission(BasePermission):
    """Reads need the viewer role, writes the operator role.

    A view may ask for other permissions with ``read_permission`` / ``write_permission``.
    Anonymous callers are refused with 401 by DRF, callers without the permission with 403.
    """

    def has_permission(self, request: Request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if request.method in SAFE_METHODS:
            return user.has_perm(getattr(view, "read_permission", VIEW))
        return user.has_perm(getattr(view, "write_permission", OPERATE))


class CanOperate(RolePermission):
    """Operator or admin, whatever the method (for reads that cost money, such as queries)."""

    def has_permission(self, request: Request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm(OPERATE))
