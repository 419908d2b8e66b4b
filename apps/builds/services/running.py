"""Running a step: what the Celery task ``builds.run_step`` does, once per attempt.

A Celery task may be delivered twice (``acks_late``: a worker lost mid-step gives its message
back). ``build_step_run`` is idempotent: a finished step is never run again, and a finish only
applies to the attempt that is still running, so a step's outputs and artifacts are written once.
While a step runs, its tokens go to ``build:<id>`` as they arrive."""

from __future__ import annotations

import logging
import uuid
from decimal import Decimal
from functools import partial

from asgiref.sync import sync_to_async
from django.db import transaction
from django.db.models import F

from apps.accounts.selectors import workspace_id_of_user
from apps.agents.execution import (
    Attribution,
    ModelSettings,
    RunCancelledError,
    RunFailedError,
    RunOutcome,
    run_prompt,
    storable,
)
from apps.agents.services import run_start, run_still_wanted
from apps.artifacts.services import artifacts_store_for_step
from apps.core.database import is_database_unavailable, retry_while_database_unavailable
from apps.core.errors import ServiceError
from apps.core.events import apublish
from apps.core.runtime import run_sync
from apps.providers.llm import Caller, EntryPoint

from .. import prompts
from ..models import Build, BuildStatus, BuildStep, RunStatus
from ..plugins import LLM, StepContext, StepFailedError, step_kinds
from .approvals import step_approved, step_await_approval
from .transitions import (
    announce_build,
    announce_step,
    build_fail_at,
    build_finish,
    event_record,
    step_activity_add,
    step_enqueue,
    step_finish,
)

logger = logging.getLogger(__name__)


def build_step_run(*, step_id: int, celery_task_id: str = "") -> None:
    """Run one step: wait for its approval if it needs one, run its prompt, keep its output and
    artifacts, go on to the next step. Idempotent per step (see the module's docstring)."""
    attempt = run_start(
        model=BuildStep,
        pk=step_id,
        celery_task_id=celery_task_id,
        select_related=("build",),
        may_start=_may_start,
        restart_clock=True,
        on_started=_step_started,
    )
    if attempt is None:
        return
    step = BuildStep.objects.select_related("build", "agent__provider", "provider").get(pk=step_id)
    try:
        if step.kind == LLM:
            outcome, url = run_sync(_run(step), timeout=None), ""
        else:
            outcome, url = _run_kind(step)
        _step_succeed(step_id, attempt, outcome, url)
    except RunCancelledError:
        return
    except RunFailedError as error:
        _step_fail(step_id, attempt, error.message, error.call_id)
    except Exception as error:  # a bug must not leave the step running until the sweep
        if is_database_unavailable(error):
            message = f"The database was unavailable ({type(error).__name__}); retry the build."
        else:
            message = f"Internal error: {type(error).__name__}."
        _step_fail(step_id, attempt, message, None)
        raise


def _may_start(step: BuildStep) -> bool:
    """Not in a finished build, and past its approval gate: a step that needs an approval asks
    for one (once) and waits for it."""
    if step.build.finished:
        return False
    if step.requires_approval and not step_approved(step):
        if step.status != RunStatus.AWAITING_APPROVAL:
            step_await_approval(step)
        return False
    return True


def _step_started(step: BuildStep, lost_attempt: int | None) -> None:
    if lost_attempt is not None:
        event_record(
            step.build,
            step,
            "retried",
            detail="Started again after its worker was lost.",
            attempt=lost_attempt,
        )
    event_record(step.build, step, "started")
    announce_step(step)
    build = step.build
    if build.status != BuildStatus.RUNNING or build.started_at is None:
        # An approval of a first step's gate has already made it running: not yet started.
        build.status = BuildStatus.RUNNING
        build.started_at = build.started_at or step.started_at
        build.save(update_fields=["status", "started_at"])
        event_record(build, None, "started")
        announce_build(build)
    if step.agent_id:
        step_activity_add(step, "started", "")


async def _run(step: BuildStep) -> RunOutcome:
    build = step.build
    outputs = await sync_to_async(_earlier_outputs)(step)
    workspace_id = await sync_to_async(workspace_id_of_user)(build.created_by_id)
    try:
        prompt = prompts.render(step.prompt_template, build_input=build.input, outputs=outputs)
    except prompts.PromptTooLargeError as error:
        raise RunFailedError(str(error)) from error
    agent = step.agent
    if agent is not None:
        model_settings = ModelSettings.of(agent, agent.system_prompt)
        overrides = {
            name: getattr(step, name)
            for name in ("temperature", "max_tokens")
            if getattr(step, name) is not None
        }
        model_settings = ModelSettings(**{**model_settings.__dict__, **overrides})
    else:
        model_settings = ModelSettings.of(step)
    channel = f"build:{build.pk}"

    async def on_token(content: str) -> None:
        await apublish(
            channel, "build.token", {"build": build.pk, "step": step.pk, "content": content}
        )

    return await run_prompt(
        prompt=prompt,
        settings=model_settings,
        caller=Caller(user_id=build.created_by_id, workspace_id=workspace_id),
        entry_point=EntryPoint.BUILD,
        attribution=Attribution(agent_id=step.agent_id, build_id=build.pk, build_step_id=step.pk),
        on_token=on_token,
        still_wanted=partial(run_still_wanted, model=BuildStep, pk=step.pk, attempt=step.attempts),
    )


def _run_kind(step: BuildStep) -> tuple[RunOutcome, str]:
    """A step of a kind another app registered: its text rendered as a prompt is, run by the
    kind on this worker. Its failures, and GitHub's or any service's, are the step's error."""
    kind = step_kinds.get(step.kind)
    if kind is None:
        raise RunFailedError(f"No step kind {step.kind!r} is installed.")
    try:
        text = prompts.render(
            step.prompt_template, build_input=step.build.input, outputs=_earlier_outputs(step)
        )
        result = kind.run(
            StepContext(step=step, build=step.build, text=text, options=dict(step.options))
        )
    except prompts.PromptTooLargeError as error:
        raise RunFailedError(str(error)) from error
    except StepFailedError as error:
        raise RunFailedError(error.message) from error
    except ServiceError as error:
        raise RunFailedError(str(error.detail)) from error
    outcome = RunOutcome(
        text=storable(result.output),
        input_tokens=0,
        output_tokens=0,
        cost=Decimal(0),
        call_id=None,
        provider="",
        model="",
    )
    return outcome, result.url


def _earlier_outputs(step: BuildStep) -> dict[str, str]:
    earlier = step.build.steps.filter(position__lt=step.position).order_by("position")
    return {name: output for name, output in earlier.values_list("name", "output")}


def _running_attempt(step_id: int, attempt: int) -> BuildStep | None:
    """The step, locked, if the given attempt is still the one running it."""
    step = (
        BuildStep.objects.select_for_update(of=("self",))
        .select_related("build", "agent")
        .get(pk=step_id)
    )
    if step.status != RunStatus.RUNNING or step.attempts != attempt:
        return None
    return step


@retry_while_database_unavailable("BUILD_STEP_STALE_SECONDS")  # safe: the attempt check
def _step_succeed(step_id: int, attempt: int, outcome: RunOutcome, url: str = "") -> None:
    with transaction.atomic():
        step = _running_attempt(step_id, attempt)
        if step is None:
            return
        step.output = outcome.text
        step.input_tokens = outcome.input_tokens
        step.output_tokens = outcome.output_tokens
        step.cost = outcome.cost
        step.call_id = outcome.call_id
        step.result_url = url
        step.save(
            update_fields=[
                "output", "input_tokens", "output_tokens", "cost", "call_id", "result_url"
            ]
        )  # fmt: skip
        artifacts_store_for_step(step=step, text=outcome.text)
        step_finish(step, RunStatus.SUCCEEDED, "")
        build = Build.objects.select_for_update().get(pk=step.build_id)
        Build.objects.filter(pk=build.pk).update(
            input_tokens=F("input_tokens") + outcome.input_tokens,
            output_tokens=F("output_tokens") + outcome.output_tokens,
            cost=F("cost") + outcome.cost,
        )
        build.refresh_from_db()
        following = build.steps.filter(position__gt=step.position).order_by("position").first()
        if following is None:
            build_finish(build, BuildStatus.SUCCEEDED, "")
        else:
            step_enqueue(following)


@retry_while_database_unavailable("BUILD_STEP_STALE_SECONDS")
def _step_fail(step_id: int, attempt: int, message: str, call_id: uuid.UUID | None) -> None:
    with transaction.atomic():
        step = _running_attempt(step_id, attempt)
        if step is None:
            return
        step.call_id = call_id
        step.save(update_fields=["call_id"])
        build_fail_at(step, message)
