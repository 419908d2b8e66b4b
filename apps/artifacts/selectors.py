"""Reads of artifacts and of their files."""

from __future__ import annotations

import logging

from django.db import models
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from .models import Artifact

logger = logging.getLogger(__name__)


def artifact_list() -> QuerySet[Artifact]:
    """Every artifact, newest first, with its step and agent (their names are listed)."""
    return Artifact.objects.select_related("step", "agent")


def artifact_get(*, pk: int) -> Artifact:
    return get_object_or_404(artifact_list(), pk=pk)


def artifact_build_get(*, pk: int) -> models.Model:
    """The ``builds.Build`` ``pk`` (a 404 if there is none), reached through the artifact's
    relation: the builds app imports this one, not the other way round."""
    build_model = Artifact._meta.get_field("build").related_model
    assert isinstance(build_model, type) and issubclass(build_model, models.Model)
    return get_object_or_404(build_model, pk=pk)


def artifact_bytes(*, artifact: Artifact) -> bytes:
    """The artifact's file. A file gone from storage is logged and its text given instead:
    the content is the file's text (stored together), so the bytes are the same."""
    try:
        with artifact.file.open("rb") as file:
            return file.read()
    except (FileNotFoundError, ValueError) as error:
        logger.warning(
            "artifact %s: file %r unreadable (%s), served from its stored text",
            artifact.pk,
            artifact.file.name,
            error,
        )
        return artifact.content.encode("utf-8")
