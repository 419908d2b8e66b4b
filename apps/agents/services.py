"""Writes and actions on agents and their tasks; the start of a run on Celery (``run_start``),
which agent tasks and build steps share.

A task is queued here (``agent_task_create``) and run by a Celery worker (``agent_task_run``,
called by ``tasks.run_task``) through the one runner, ``execution.run_prompt``. Its row is the
truth about it: a worker starts it only while it is queued (or running, when the broker
redelivers it after a worker died), finishes it only while it still holds the same attempt, and
stops streaming within ``execution.WATCH_SECONDS`` once the row says it is no longer wanted
(cancelled, failed by the sweep, taken over by a newer attempt).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.accounts.selectors import workspace_id_of_user
from apps.core.database import is_database_unavailable, retry_while_database_unavailable
from apps.core.dispatch import resend_stale_queued, send_on_commit, stale_before
from apps.core.events import apublish, publish_on_commit
from apps.core.registry import SocketReply
from apps.core.runtime import run_sync
from apps.core.services import instance_update
from apps.providers.llm import Caller, EntryPoint, current_routing_config
from apps.providers.models import Provider

from .execution import (
    Attribution,
    ModelSettings,
    RunCancelledError,
    RunFailedError,
    RunOutcome,
    run_prompt,
)
from .models import Agent, AgentActivity, AgentTask, RunRecord, RunStatus
from .selectors import agent_status

logger = logging.getLogger(__name__)

AGENT_FIELDS = (
    "name", "role", "description", "system_prompt", "enabled", "model", "provider",
    "temperature", "max_tokens",
)  # fmt: skip
MAX_ERROR_LENGTH = 500

Actor = User | AnonymousUser | None
RunT = TypeVar("RunT", bound=RunRecord)


class AgentTaskFinishedError(Exception):
    """A finished task cannot be cancelled (nor changed otherwise)."""

    def __init__(self, task: AgentTask) -> None:
        super().__init__(f"Task #{task.pk} has already finished ({task.status}).")
        self.task = task


# --- agents ------------------------------------------------------------------------------------


def agent_model_check(*, model: str, provider: Provider | None) -> None:
    """The model (or, empty, the routing default) must be served, by the pinned provider if
    one is: a typo would otherwise show only when the agent's first task fails."""
    config = run_sync(current_routing_config())
    provider_name = provider.name if provider is not None else None
    if provider is not None and not provider.enabled:
        raise ValidationError({"provider": f"Provider {provider_name!r} is disabled."})
    if config.deployments_for(model, provider_name):
        return
    if not model and not config.policy.default_model:
        raise ValidationError(
            {"model": "Name a model: the routing settings name no default model."}
        )
    where = f" on provider {provider_name!r}" if provider_name else ""
    field = "model" if model or provider is None else "provider"
    served = model or config.policy.default_model
    raise ValidationError({field: f"No enabled deployment serves model {served!r}{where}."})


@transaction.atomic
def agent_create(*, by: Actor = None, **fields: Any) -> Agent:
    """Create an agent; its model must resolve (see ``agent_model_check``). ``by`` is who asked."""
    agent_model_check(model=fields.get("model", ""), provider=fields.get("provider"))
    agent = instance_update(instance=Agent(), fields=AGENT_FIELDS, data=fields)
    _status_publish(agent)
    return agent


@transaction.atomic
def agent_update(*, agent: Agent, **fields: Any) -> Agent:
    """Update fields; the model is checked again when the model or the provider changes (an
    agent whose model went away can still be disabled or renamed)."""
    if "model" in fields or "provider" in fields:
        agent_model_check(
            model=fields.get("model", agent.model), provider=fields.get("provider", agent.provider)
        )
    agent = instance_update(instance=agent, fields=AGENT_FIELDS, data=fields)
    _status_publish(agent)
    return agent


def agent_delete(*, agent: Agent) -> None:
    agent.delete()


@transaction.atomic
def agents_enable(*, agents: Any, enabled: bool) -> int:
    """Enable or disable many agents at once (the admin's actions); returns how many changed."""
    changed = 0
    for agent in agents:
        if agent.enabled != enabled:
            agent.enabled = enabled
            agent.save(update_fields=["enabled", "updated_at"])
            changed += 1
    return changed


def agent_activity_add(
    *,
    agent: Agent,
    event: str,
    message: str = "",
    task: AgentTask | None = None,
    build_step_id: int | None = None,
) -> AgentActivity:
    """Log what the agent did (builds log their steps here too)."""
    return AgentActivity.objects.create(
        agent=agent,
        event=event[:32],
        message=message[:500],
        task=task,
        build_step_id=build_step_id,
    )


def _status_publish(agent: Agent) -> None:
    """The agent's status as of this transaction, sent once it commits."""
    publish_on_commit(
        "agents",
        "agent.status",
        {"agent": agent.pk, "name": agent.name, "status": agent_status(agent)},
    )


def _task_changed(task: AgentTask, event: str, message: str = "") -> None:
    """Log the change, and announce it and the agent's status once the transaction commits."""
    agent_activity_add(agent=task.agent, event=event, message=message, task=task)
    publish_on_commit(
        "agents",
        "agent.task",
        {"agent": task.agent_id, "task": task.pk, "status": str(task.status), "error": task.error},
    )
    _status_publish(task.agent)


# --- runs on Celery (agent tasks, build steps) -------------------------------------------------


def run_start(
    *,
    model: type[RunT],
    pk: int,
    celery_task_id: str,
    on_started: Callable[[RunT, int | None], None],
    select_related: Sequence[str] = (),
    may_start: Callable[[RunT], bool] | None = None,
    restart_clock: bool = False,
) -> int | None:
    """Mark a run (an agent task, a build step) started by the Celery task ``celery_task_id``
    as a new attempt: its number, or None when there is nothing to run.

    Nothing runs when the row is gone or finished, when the message is of an earlier run of it
    (another task id: it was run again meanwhile), or when it is running with a fresh heartbeat
    (the message came again while its first worker still runs it); then ``may_start``, given
    the locked row, may still refuse. A row found running without a fresh heartbeat was started
    by a worker that died: it runs again. ``on_started(row, lost_attempt)`` runs in the same
    transaction once the row is saved; ``lost_attempt`` is the number of the attempt whose
    worker was lost, None on a first start. ``started_at`` stays the first attempt's, or with
    ``restart_clock`` becomes the new one's.
    """
    with transaction.atomic():
        row = (
            model._default_manager.select_for_update(of=("self",))
            .select_related(*select_related)
            .filter(pk=pk)
            .first()
        )
        if row is None or row.finished:
            return None
        if celery_task_id and celery_task_id != row.celery_task_id:
            return None
        if row.status == RunStatus.RUNNING and row.heartbeat_fresh:
            return None
        if may_start is not None and not may_start(row):
            return None
        lost_attempt = row.attempts if row.status == RunStatus.RUNNING else None
        now = timezone.now()
        row.attempts += 1
        row.status = RunStatus.RUNNING
        row.started_at = now if restart_clock else (row.started_at or now)
        row.heartbeat_at = now
        row.celery_task_id = celery_task_id or row.celery_task_id
        row.save(
            update_fields=["attempts", "status", "started_at", "heartbeat_at", "celery_task_id"]
        )
        on_started(row, lost_attempt)
        return row.attempts


# --- tasks -------------------------------------------------------------------------------------


def agent_task_create(*, agent: Agent, prompt: str, by: Actor = None) -> AgentTask:
    """Queue ``prompt`` for ``agent``; a worker runs it once the task is committed."""
    from .tasks import run_task

    if not agent.enabled:
        raise ValidationError({"agent": f"Agent {agent.name!r} is disabled."})
    if not prompt or not prompt.strip():
        raise ValidationError({"prompt": "Give the task a prompt."})
    celery_task_id = str(uuid.uuid4())
    with transaction.atomic():
        task = AgentTask.objects.create(
            agent=agent,
            prompt=prompt,
            created_by=by if by is not None and by.is_authenticated else None,
            status=RunStatus.QUEUED,
            queued_at=timezone.now(),
            celery_task_id=celery_task_id,
        )
        _task_changed(task, "queued")
        send_on_commit(run_task, args=[task.pk], task_id=celery_task_id)
    return task


def agent_task_cancel(*, task: AgentTask, by: Actor = None) -> AgentTask:
    """Cancel a queued or running task. A worker running it stops within
    ``execution.WATCH_SECONDS``, closing its stream (and with it the upstream request)."""
    with transaction.atomic():
        locked = AgentTask.objects.select_for_update().select_related("agent").get(pk=task.pk)
        if locked.finished:
            raise AgentTaskFinishedError(locked)
        locked.status = RunStatus.CANCELLED
        locked.finished_at = timezone.now()
        locked.save(update_fields=["status", "finished_at"])
        who = by.get_username() if by is not None and by.is_authenticated else ""
        _task_changed(locked, "cancelled", f"Cancelled by {who}." if who else "Cancelled.")
    return locked


def agent_task_run(*, task_id: int, celery_task_id: str) -> None:
    """Run a queued task to its end (what the Celery task does).

    Idempotent: a task that is finished (or cancelled, or gone) is left alone, and so is one
    still running with a fresh heartbeat (a message sent again by the sweep), so a message
    delivered twice never runs a task twice. A task found running without a fresh heartbeat
    was started by a worker that died (the message came back because it was never
    acknowledged): it runs again as a new attempt, logged as "retried".
    """
    attempt = run_start(
        model=AgentTask,
        pk=task_id,
        celery_task_id=celery_task_id,
        select_related=("agent",),
        on_started=_task_started,
    )
    if attempt is None:
        return
    task = AgentTask.objects.select_related("agent", "agent__provider").filter(pk=task_id).first()
    if task is None:  # deleted with its agent meanwhile
        return

    async def on_token(content: str) -> None:
        data = {"task": task_id, "content": content}
        await apublish(f"agent_task:{task_id}", "agent_task.token", data)

    still_wanted = partial(run_still_wanted, model=AgentTask, pk=task_id, attempt=attempt)
    agent = task.agent
    try:
        outcome = run_sync(
            run_prompt(
                prompt=task.prompt,
                settings=ModelSettings.of(agent, agent.system_prompt),
                caller=Caller(
                    user_id=task.created_by_id,
                    workspace_id=workspace_id_of_user(task.created_by_id),
                ),
                entry_point=EntryPoint.AGENT,
                attribution=Attribution(agent_id=agent.pk),
                on_token=on_token,
                still_wanted=still_wanted,
            )
        )
    except RunFailedError as error:
        _task_finish(task_id, attempt, RunStatus.FAILED, error=error.message, call_id=error.call_id)
    except RunCancelledError:
        pass
    except Exception as error:  # Celery's soft time limit, a lost database: the row says so
        logger.exception("agent task %s failed", task_id)
        message = f"{type(error).__name__}: {error}"
        if is_database_unavailable(error):
            message = f"The database was unavailable ({type(error).__name__})."
        _task_finish(task_id, attempt, RunStatus.FAILED, error=message)
    else:
        _task_finish(task_id, attempt, RunStatus.SUCCEEDED, outcome=outcome)


def _task_started(task: AgentTask, lost_attempt: int | None) -> None:
    if lost_attempt is None:
        _task_changed(task, "started")
    else:
        _task_changed(task, "retried", f"Attempt {task.attempts}: its worker was lost.")


async def run_still_wanted(*, model: type[RunT], pk: int, attempt: int) -> bool:
    """Report a run's worker alive (an agent task, a build step): whether the run should go on
    (False once cancelled, swept or taken over by a later attempt).

    A connection per heartbeat (``database_sync_to_async`` gives it back to the pool): one kept
    across a database restart would be dead for every heartbeat after it. While the database
    does not answer the run goes on; the sweep is the backstop."""
    try:
        return await database_sync_to_async(_heartbeat)(model, pk, attempt)
    except Exception as error:
        if not is_database_unavailable(error):
            raise
        name = model._meta.verbose_name
        logger.warning("%s %s: could not report its heartbeat (%s)", name, pk, error)
        return True


def _heartbeat(model: type[RunT], pk: int, attempt: int) -> bool:
    running = model._default_manager.filter(pk=pk, status=RunStatus.RUNNING, attempts=attempt)
    return running.update(heartbeat_at=timezone.now()) == 1


@retry_while_database_unavailable("BUILD_STEP_STALE_SECONDS")  # safe: the attempt check
def _task_finish(
    task_id: int,
    attempt: int,
    status: RunStatus,
    *,
    outcome: RunOutcome | None = None,
    error: str = "",
    call_id: uuid.UUID | None = None,
) -> bool:
    """Store the end of an attempt, unless the task moved on meanwhile (cancelled, failed by the
    sweep, taken over by a newer attempt); says whether it was stored."""
    with transaction.atomic():
        task = (
            AgentTask.objects.select_for_update(of=("self",))
            .select_related("agent")
            .filter(pk=task_id, status=RunStatus.RUNNING, attempts=attempt)
            .first()
        )
        if task is None:
            return False
        task.status = status
        task.finished_at = timezone.now()
        task.error = error[:MAX_ERROR_LENGTH]
        task.call_id = call_id
        if outcome is not None:
            task.output = outcome.text
            task.input_tokens = outcome.input_tokens
            task.output_tokens = outcome.output_tokens
            task.cost = outcome.cost
            task.call_id = outcome.call_id
        task.save()
        _task_changed(task, str(status), task.error)
        return True


def agent_tasks_sweep() -> int:
    """Fail running tasks whose worker stopped reporting (``BUILD_STEP_STALE_SECONDS``): it
    died without its message coming back. Send again the message of tasks queued that long and
    not started (the broker was away when they were queued). Returns how many it failed or
    sent again."""
    return _tasks_resend() + _tasks_fail_stale()


def _tasks_resend() -> int:
    from .tasks import run_task

    return resend_stale_queued(AgentTask, run_task, status=RunStatus.QUEUED)


def _tasks_fail_stale() -> int:
    cutoff = stale_before()
    swept = 0
    candidates = AgentTask.objects.filter(status=RunStatus.RUNNING, heartbeat_at__lt=cutoff)
    for task_id in candidates.values_list("pk", flat=True):
        with transaction.atomic():
            task = (
                AgentTask.objects.select_for_update(of=("self",))
                .select_related("agent")
                .filter(pk=task_id, status=RunStatus.RUNNING, heartbeat_at__lt=cutoff)
                .first()
            )
            if task is None:
                continue
            task.status = RunStatus.FAILED
            task.finished_at = timezone.now()
            seconds = settings.BUILD_STEP_STALE_SECONDS
            task.error = f"Worker lost: no heartbeat for {seconds:g} s."
            task.save(update_fields=["status", "finished_at", "error"])
            _task_changed(task, "failed", task.error)
            swept += 1
    return swept


def agent_socket_action(message: dict[str, Any], user: Actor) -> SocketReply:
    """``{"type": "agent", "id": ..., "agent": <id or name>, "prompt": "..."}``: runs a task as
    ``POST /api/v1/agents/{id}/tasks`` does; the client follows it on ``agent_task:<id>``."""
    ref = message.get("agent")
    if isinstance(ref, int) and not isinstance(ref, bool):
        agent = Agent.objects.filter(pk=ref).first()
    elif isinstance(ref, str) and ref:
        agent = Agent.objects.filter(name=ref).first()
    else:
        raise ValidationError({"agent": "An agent's id or name."})
    if agent is None:
        raise ValidationError({"agent": f"No agent {ref!r}."})
    prompt = message.get("prompt")
    if not isinstance(prompt, str):
        raise ValidationError({"prompt": "A string."})
    task = agent_task_create(agent=agent, prompt=prompt, by=user)
    return SocketReply(
        {"task": task.pk, "agent": agent.pk, "status": task.status},
        subscribe=f"agent_task:{task.pk}",
    )
