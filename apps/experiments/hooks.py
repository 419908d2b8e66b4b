"""The request hook: a call that names a running experiment gets its user's variant.

A request joins by the body's ``experiment`` or the ``X-Orchestra-Experiment`` header (the
experiment's name or id); the user is OpenAI's ``user`` in the body, else the caller's own user
(else its API key). The hook applies the variant's overrides (model, provider, temperature,
max tokens, system prompt) to chat requests and marks the request with the variant's id, which
its call record keeps.

Cost on the hot path: a request that names no experiment returns at the first line. One that
does reads an in-process snapshot of the running experiments; after ``CACHE_SECONDS`` (or when
it names an experiment the snapshot lacks) one Redis ``GET`` of the shared version, bumped by
every change (``services.config_version_bump``), says whether to reload it from the database
(once for concurrent requests, ``SingleFlight``). The assignment row is written (one ``INSERT … ON
CONFLICT DO NOTHING`` in a thread) the first time a process sees a user in a phase, awaited so
that a conversion tracked right after the answer finds it; later calls of that user write
nothing.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from channels.db import database_sync_to_async

from apps.core.redis import async_redis
from apps.core.runtime import SingleFlight
from apps.providers.llm import Endpoint, LlmRequest

from .assignment import RunningExperiment, VariantConfig
from .selectors import experiments_enabled, running_experiments
from .services import assignment_record, version_key

logger = logging.getLogger(__name__)

CACHE_SECONDS = 1.0  # a snapshot is used this long without looking at the shared version
MAX_AGE_SECONDS = 60.0  # and reloaded after this long whatever the version says
MAX_USER_LENGTH = 255  # an Assignment's user_id
REMEMBERED_ASSIGNMENTS = 100_000


@dataclass(frozen=True)
class Snapshot:
    version: int | None
    loaded_at: float
    enabled: bool
    experiments: dict[str, RunningExperiment] = field(default_factory=dict)  # by name and id

    def find(self, ref: str) -> RunningExperiment | None:
        return self.experiments.get(ref)


def snapshot_load(version: int | None) -> Snapshot:
    """The running experiments and the switch, from the database."""
    by_ref: dict[str, RunningExperiment] = {}
    for experiment in running_experiments():
        by_ref[str(experiment.id)] = experiment
    for experiment in by_ref.copy().values():
        by_ref[experiment.name] = experiment
    return Snapshot(version, time.monotonic(), experiments_enabled(), by_ref)


class _State:
    snapshot: Snapshot | None = None
    checked_at = 0.0
    recorded: OrderedDict[tuple[int, int, str], None] = OrderedDict()


_state = _State()
_reloads = SingleFlight()


def snapshot_clear() -> None:
    """Forget the snapshot and the assignments seen (a restart, as far as this module knows)."""
    _state.snapshot = None
    _state.checked_at = 0.0
    _state.recorded.clear()


async def _shared_version() -> int | None:
    """The shared version (0 before any change); None when Redis does not answer."""
    try:
        value = await async_redis().get(version_key())
    except Exception:
        return None
    return int(value) if value is not None else 0


async def _reload(version: int | None) -> Snapshot:
    snapshot = await database_sync_to_async(snapshot_load)(version)
    _state.snapshot, _state.checked_at = snapshot, time.monotonic()
    return snapshot


async def current_snapshot(ref: str) -> Snapshot:
    """The snapshot to assign a request naming ``ref`` by (see the module's docstring)."""
    snapshot, now = _state.snapshot, time.monotonic()
    if snapshot is not None and now - _state.checked_at < CACHE_SECONDS and snapshot.find(ref):
        return snapshot
    version = await _shared_version()
    if snapshot is not None and now - snapshot.loaded_at < MAX_AGE_SECONDS:
        if version is not None and version == snapshot.version:
            _state.checked_at = now
            return snapshot
        if version is None and now - _state.checked_at < CACHE_SECONDS:
            return snapshot
    return await _reloads.run(version, lambda: _reload(version))


def request_user(request: LlmRequest) -> str:
    """Who the request is assigned by: OpenAI's ``user``, else the caller's user, else its key."""
    if request.user and len(request.user) <= MAX_USER_LENGTH:
        return request.user
    if request.caller.user_id is not None:
        return str(request.caller.user_id)
    if request.caller.api_key_id is not None:
        return f"key:{request.caller.api_key_id}"
    return ""


def with_system_prompt(messages: list[dict[str, Any]], prompt: str) -> list[dict[str, Any]]:
    """The messages with the first system message's content replaced by ``prompt`` (or
    ``prompt`` as a new first system message); the caller's list is left as it was."""
    for index, message in enumerate(messages):
        if message.get("role") == "system":
            return [*messages[:index], {**message, "content": prompt}, *messages[index + 1 :]]
    return [{"role": "system", "content": prompt}, *messages]


def apply_variant(request: LlmRequest, variant: VariantConfig) -> None:
    """The variant's overrides on the request, and its id for the call record."""
    if variant.model:
        request.model = variant.model
    if variant.provider:
        request.provider = variant.provider
    if variant.temperature is not None:
        request.params["temperature"] = variant.temperature
    if variant.max_tokens is not None:
        limit = (
            "max_completion_tokens" if "max_completion_tokens" in request.params else "max_tokens"
        )
        request.params[limit] = variant.max_tokens
    if variant.system_prompt:
        request.messages = with_system_prompt(request.messages, variant.system_prompt)
    request.experiment_variant_id = variant.id


async def _record(experiment: RunningExperiment, variant: VariantConfig, user: str) -> None:
    seen = (experiment.id, experiment.phase, user)
    if seen in _state.recorded:
        return
    try:
        await database_sync_to_async(assignment_record)(
            experiment_id=experiment.id,
            phase=experiment.phase,
            variant_id=variant.id,
            user_id=user,
        )
    except Exception:  # the call goes on; the assignment is recorded by the next one
        logger.warning("could not record the assignment of %s", user, exc_info=True)
        return
    _state.recorded[seen] = None
    if len(_state.recorded) > REMEMBERED_ASSIGNMENTS:
        _state.recorded.popitem(last=False)


async def experiment_request_hook(request: LlmRequest) -> None:
    """The request hook (registered as ``experiments.variant``)."""
    if not request.experiment:
        return
    if request.endpoint != Endpoint.CHAT:
        return
    snapshot = await current_snapshot(request.experiment)
    experiment = snapshot.find(request.experiment)
    if not snapshot.enabled or experiment is None:
        return
    user = request_user(request)
    variant = experiment.variant_for(user) if user else None
    if variant is None:
        return
    apply_variant(request, variant)
    await _record(experiment, variant, user)
