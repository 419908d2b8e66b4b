"""Writing artifacts: a step's output split into files and stored, once; a build's archive.

The builds app calls ``artifacts_store_for_step`` in the transaction that marks a step
succeeded. This app imports nothing of the builds app (it imports this one): a step and a
build are taken as model instances and their classes reached through them.
"""

from __future__ import annotations

import hashlib
import io
import logging
import zipfile
from datetime import UTC
from typing import IO, Any

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import models, transaction

from .extraction import artifacts_extract, name_sanitize, name_unique
from .models import Artifact
from .selectors import artifact_bytes

logger = logging.getLogger(__name__)


def step_report_name(*, step: Any) -> str:
    """``<position>-<step name>.md``, one safe path segment: ``2-write code.md`` ->
    ``2-write_code.md``."""
    return name_sanitize(f"{step.position}-{str(step.name).replace('/', '-')}.md") or "report.md"


def _files_delete(artifacts: list[Artifact]) -> None:
    for artifact in artifacts:
        try:
            if artifact.file.name:
                default_storage.delete(artifact.file.name)
        except OSError:
            logger.exception("artifact file %r could not be removed", artifact.file.name)


def artifacts_store_for_step(*, step: models.Model, text: str) -> list[Artifact]:
    """Store the artifacts of a step's output ``text`` (its report, code files, patches) and
    return them; if the step has artifacts already, return those and write nothing.

    ``step`` is a ``builds.BuildStep``. Its row is locked for the rest of the caller's
    transaction, so a redelivered task running at the same time waits and then finds the
    artifacts the first one stored. Files are written through ``default_storage`` before the
    rows; if writing fails here they are removed again (a rollback of the caller's transaction
    after this returns leaves them in storage, unreferenced).
    """
    with transaction.atomic():
        type(step)._default_manager.select_for_update().filter(pk=step.pk).first()
        existing = list(Artifact.objects.filter(step_id=step.pk).order_by("id"))
        if existing:
            return existing
        build_id = step.build_id  # type: ignore[attr-defined]
        agent_id = step.agent_id  # type: ignore[attr-defined]
        artifacts: list[Artifact] = []
        try:
            for extracted in artifacts_extract(text, report_name=step_report_name(step=step)):
                data = extracted.content.encode("utf-8")
                artifact = Artifact(
                    build_id=build_id,
                    step_id=step.pk,
                    agent_id=agent_id,
                    name=extracted.name,
                    kind=extracted.kind,
                    language=extracted.language,
                    content=extracted.content,
                    content_type=extracted.content_type,
                    size=len(data),
                    checksum=hashlib.sha256(data).hexdigest(),
                    note=extracted.note[:500],
                )
                artifact.file.save(extracted.name, ContentFile(data), save=False)
                artifacts.append(artifact)
            Artifact.objects.bulk_create(artifacts)
        except BaseException:
            _files_delete(artifacts)
            raise
    logger.info(
        "stored %d artifacts of step %s",
        len(artifacts),
        step.pk,
        extra={"build_id": build_id, "step_id": step.pk},
    )
    return artifacts


def archive_member_names(artifacts: list[Artifact]) -> list[str]:
    """Each artifact's path in a build's archive: ``step-<position>-<step name>/<name>``
    (``build/<name>`` without a step), safe and unique."""
    taken: set[str] = set()
    names = []
    for artifact in artifacts:
        step = artifact.step
        folder = (
            name_sanitize(f"step-{step.position}-{step.name.replace('/', '-')}")
            if step is not None
            else "build"
        )
        name = name_sanitize(artifact.name) or f"artifact-{artifact.pk}"
        names.append(name_unique(f"{folder}/{name}", taken, max_length=400))
    return names


def artifact_archive_write(*, build: models.Model, file: IO[bytes]) -> int:
    """Write a zip of every artifact of ``build`` (a ``builds.Build``) to ``file``; return
    how many it holds."""
    artifacts = list(
        Artifact.objects.filter(build_id=build.pk)
        .select_related("step")
        .order_by("step__position", "id")
    )
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for artifact, member in zip(artifacts, archive_member_names(artifacts), strict=True):
            created = artifact.created_at.astimezone(UTC)
            info = zipfile.ZipInfo(member, date_time=created.timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, artifact_bytes(artifact=artifact))
    return len(artifacts)


def artifact_archive(*, build: models.Model) -> bytes:
    """The zip of every artifact of ``build``, in memory (see ``artifact_archive_write``)."""
    buffer = io.BytesIO()
    artifact_archive_write(build=build, file=buffer)
    return buffer.getvalue()
