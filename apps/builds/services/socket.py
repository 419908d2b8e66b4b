"""The ``/ws/`` protocol's ``build`` message: starts a build as the REST API does."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError

from apps.core.registry import SocketReply

from ..models import BuildTemplate
from .creation import build_create, build_create_from_template


def build_socket_action(message: dict[str, Any], user: User) -> SocketReply:
    """``{"type": "build", "id": ..., "title", "input", "steps": [...]}`` or ``"template": id``:
    starts a build as ``POST /api/v1/builds`` does; the client follows it on ``build:<id>``."""
    title, build_input = message.get("title", ""), message.get("input", "")
    if not isinstance(title, str) or not isinstance(build_input, str):
        raise ValidationError("'title' and 'input' are strings.")
    if "template" in message:
        template = (
            BuildTemplate.objects.filter(pk=message["template"]).first()
            if isinstance(message["template"], int)
            else None
        )
        if template is None:
            raise ValidationError({"template": "No such template."})
        build = build_create_from_template(
            template=template, by=user, input=build_input, title=title
        )
    else:
        if not title:
            raise ValidationError({"title": "Required."})
        build = build_create(title=title, input=build_input, steps=message.get("steps"), by=user)
    return SocketReply(
        {"build": build.pk, "status": build.status, "steps": build.steps.count()},
        subscribe=f"build:{build.pk}",
    )
