"""Builds: create, run step by step on Celery, wait for approvals, cancel, retry, sweep.

A build's steps run one at a time: each step is its own Celery task (``builds.run_step``),
enqueued when the step before it succeeds, with the task id stored on the step before the
message leaves. Every state change is kept in ``BuildEvent`` and published on commit: the
build's status on ``builds`` and ``build:<id>``, each step's on ``build:<id>``, and while a step
runs its tokens on ``build:<id>`` as they arrive.

A Celery task may be delivered twice (``acks_late``: a worker lost mid-step gives its message
back). ``build_step_run`` is idempotent: a finished step is never run again, and a finish only
applies to the attempt that is still running, so a step's outputs and artifacts are written once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.agents.execution import (
    Attribution,
    ModelSettings,
    RunCancelledError,
    RunFailedError,
    RunOutcome,
    run_prompt,
)
from apps.agents.models import FINISHED, Agent
from apps.agents.services import agent_activity_add
from apps.approvals.models import ApprovalRequest, ApprovalStatus, RiskLevel
from apps.approvals.services import approval_request_create
from apps.artifacts.services import artifacts_store_for_step
from apps.core.database import is_database_unavailable, retry_while_database_unavailable
from apps.core.dispatch import resend_stale_queued, send_on_commit, stale_before
from apps.core.events import apublish, publish_on_commit
from apps.core.registry import SocketReply
from apps.core.runtime import run_sync
from apps.providers.llm import Caller, EntryPoint
from apps.providers.models import Provider

from .. import prompts
from ..models import (
    Build,
    BuildEvent,
    BuildStatus,
    BuildStep,
    BuildTemplate,
    RunStatus,
)

logger = logging.getLogger(__name__)

MAX_STEPS = 20
STEP_FIELDS = ("name", "prompt", "agent", "model", "provider", "temperature", "max_tokens",
               "requires_approval", "approval_risk")  # fmt: skip
TEMPLATE_FIELDS = ("name", "description", "steps")
APPROVAL_KIND = "build_step"


# --- creating -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepSpec:
    name: str
    prompt: str
    agent: Agent | None
    model: str
    provider: Provider | None
    temperature: float | None
    max_tokens: int | None
    requires_approval: bool
    approval_risk: str


def build_steps_validate(steps: Any, build_input: str = "") -> list[StepSpec]:
    """The steps of a build or template, checked: a list of objects, each with a unique
    ``name`` and a ``prompt`` whose placeholders name earlier steps and which, rendered with
    ``build_input``, stays within ``PROMPT_MAX_BYTES``, run by an ``agent`` (id or name) or a
    model config (``model``, ``provider``, ``temperature``, ``max_tokens``); a step with
    ``requires_approval`` may give its gate's ``approval_risk`` (medium when left out)."""
    if not isinstance(steps, list) or not steps:
        raise ValidationError({"steps": "A non-empty list of steps."})
    if len(steps) > MAX_STEPS:
        raise ValidationError({"steps": f"At most {MAX_STEPS} steps."})
    specs: list[StepSpec] = []
    problems: list[str] = []
    for number, raw in enumerate(steps, start=1):
        try:
            specs.append(_step_spec(raw, [spec.name for spec in specs], build_input))
        except ValidationError as error:
            problems.extend(f"Step {number}: {text}" for text in _flat(error))
    if problems:
        raise ValidationError({"steps": problems})
    return specs


def _flat(error: ValidationError) -> list[str]:
    if hasattr(error, "error_dict"):
        return [f"{field}: {text}" for field, texts in error.message_dict.items() for text in texts]
    return list(error.messages)


def _step_spec(raw: Any, earlier: list[str], build_input: str) -> StepSpec:
    if not isinstance(raw, Mapping):
        raise ValidationError("Each step is an object.")
    unknown = sorted(set(raw) - set(STEP_FIELDS))
    if unknown:
        raise ValidationError({name: "Unknown field." for name in unknown})
    name = raw.get("name")
    if not isinstance(name, str) or not prompts.STEP_NAME.fullmatch(name):
        raise ValidationError({"name": "1-100 letters, digits, '-' or '_'."})
    if name in earlier:
        raise ValidationError({"name": "Step names are unique within a build."})
    prompt = raw.get("prompt")
    if not isinstance(prompt, str):
        raise ValidationError({"prompt": "A string."})
    problems = prompts.template_errors(prompt, earlier, build_input)
    if problems:
        raise ValidationError({"prompt": problems})
    step = BuildStep(
        name=name, prompt_template=prompt, model=_text(raw, "model"),
        temperature=raw.get("temperature"), max_tokens=raw.get("max_tokens"),
        requires_approval=_flag(raw, "requires_approval"),
        approval_risk=_approval_risk(raw),
    )  # fmt: skip
    step.agent = _agent(raw.get("agent"))
    step.provider = _provider(raw.get("provider"))
    step.clean_fields(exclude=["build", "position", "output", "error"])
    return StepSpec(
        name=name, prompt=prompt, agent=step.agent, model=step.model, provider=step.provider,
        temperature=step.temperature, max_tokens=step.max_tokens,
        requires_approval=step.requires_approval, approval_risk=step.approval_risk,
    )  # fmt: skip


def _approval_risk(raw: Mapping[str, Any]) -> str:
    """The gate's risk level: only with ``requires_approval``, where it decides who may approve
    the step (and whether its requester may, with the policy's self-approval)."""
    value = raw.get("approval_risk")
    if value is None:
        return RiskLevel.MEDIUM
    if value not in RiskLevel.values:
        raise ValidationError({"approval_risk": f"One of {', '.join(RiskLevel.values)}."})
    if raw.get("requires_approval") is not True:
        raise ValidationError({"approval_risk": "Only with requires_approval."})
    return value


def _text(raw: Mapping[str, Any], key: str) -> str:
    value = raw.get(key) or ""
    if not isinstance(value, str):
        raise ValidationError({key: "A string."})
    return value


def _flag(raw: Mapping[str, Any], key: str) -> bool:
    value = raw.get(key, False)
    if not isinstance(value, bool):
        raise ValidationError({key: "true or false."})
    return value


def _agent(value: Any) -> Agent | None:
    if value in (None, ""):
        return None
    lookup: dict[str, Any] | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        lookup = {"pk": value}
    elif isinstance(value, str):
        lookup = {"name": value}
    agent = Agent.objects.filter(**lookup).select_related("provider").first() if lookup else None
    if agent is None:
        raise ValidationError({"agent": f"No agent {value!r}."})
    if not agent.enabled:
        raise ValidationError({"agent": f"The agent {agent.name!r} is disabled."})
    return agent


def _provider(value: Any) -> Provider | None:
    if value in (None, ""):
        return None
    provider = Provider.objects.filter(name=value).first() if isinstance(value, str) else None
    if provider is None:
        raise ValidationError({"provider": f"No provider {value!r}."})
    return provider


def build_create(
    *,
    title: str,
    steps: Any,
    by: User | None,
    input: str = "",
    template: BuildTemplate | None = None,
) -> Build:
    """Create a build and enqueue its first step."""
    if "\x00" in input:
        raise ValidationError({"input": "NUL characters (\\u0000) are not accepted."})
    if len(input.encode("utf-8", "surrogatepass")) > settings.PROMPT_MAX_BYTES:
        raise ValidationError(
            {"input": f"At most {settings.PROMPT_MAX_BYTES:,} bytes (PROMPT_MAX_BYTES)."}
        )
    specs = build_steps_validate(steps, input)
    build = Build(title=title, input=input, template=template, created_by=by)
    build.full_clean(exclude=["created_by", "template"])
    with transaction.atomic():
        build.save()
        for position, spec in enumerate(specs, start=1):
            BuildStep.objects.create(
                build=build, position=position, name=spec.name, prompt_template=spec.prompt,
                agent=spec.agent, model=spec.model, provider=spec.provider,
                temperature=spec.temperature, max_tokens=spec.max_tokens,
                requires_approval=spec.requires_approval, approval_risk=spec.approval_risk,
                status=RunStatus.PENDING,
            )  # fmt: skip
        _event(build, None, "queued")
        _announce_build(build)
        _enqueue(build.steps.order_by("position").first())
    return build


def build_create_from_template(
    *, template: BuildTemplate, by: User | None, input: str = "", title: str = ""
) -> Build:
    return build_create(
        title=title or template.name, input=input, steps=template.steps, by=by, template=template
    )


def build_template_create(*, by: User | None, **fields: Any) -> BuildTemplate:
    return build_template_update(template=BuildTemplate(created_by=by), **fields)


def build_template_update(*, template: BuildTemplate, **fields: Any) -> BuildTemplate:
    unexpected = sorted(set(fields) - set(TEMPLATE_FIELDS))
    if unexpected:
        raise ValueError(f"cannot set {', '.join(unexpected)} of a template")
    if "steps" in fields:
        build_steps_validate(fields["steps"])
    for name, value in fields.items():
        setattr(template, name, value)
    template.full_clean(exclude=["created_by"])
    template.save()
    return template


def build_template_delete(*, template: BuildTemplate) -> None:
    """Delete a template; the builds made from it stay (their ``template`` becomes null)."""
    template.delete()


# --- cancelling and retrying ----------------------------------------------------------------


def build_cancel(*, build: Build, by: User | None = None) -> Build:
    """Cancel a build that has not finished: the running step stops within half a second (its
    stream is closed, which closes the upstream request) and the rest never start."""
    with transaction.atomic():
        build = Build.objects.select_for_update().get(pk=build.pk)
        if build.finished:
            raise ValidationError(f"The build already {build.status}.")
        for step in build.steps.exclude(status__in=FINISHED):
            _step_finish(step, RunStatus.CANCELLED, "Cancelled.")
        _build_finish(build, BuildStatus.CANCELLED, "Cancelled" + (f" by {by}." if by else "."))
    return build


def build_retry(*, build: Build, by: User | None = None) -> Build:
    """Run a failed or cancelled build again from its first step that did not succeed."""
    with transaction.atomic():
        build = Build.objects.select_for_update().get(pk=build.pk)
        if build.status not in (BuildStatus.FAILED, BuildStatus.CANCELLED):
            raise ValidationError("Only a failed or cancelled build can be retried.")
        unfinished = list(build.steps.exclude(status=RunStatus.SUCCEEDED).order_by("position"))
        if not unfinished:
            raise ValidationError("Every step of this build succeeded.")
        for step in unfinished:
            step.status = RunStatus.PENDING
            step.error = ""
            step.output = ""
            step.approval = None
            step.finished_at = None
            step.save(update_fields=["status", "error", "output", "approval", "finished_at"])
        build.status = BuildStatus.QUEUED
        build.error = ""
        build.finished_at = None
        build.save(update_fields=["status", "error", "finished_at"])
        _event(
            build,
            None,
            "retried",
            detail=f"From step {unfinished[0].name}" + (f" by {by}" if by else ""),
        )
        _announce_build(build)
        _enqueue(unfinished[0])
    return build


# --- running a step (the Celery task) --------------------------------------------------------


def build_step_run(*, step_id: int, celery_task_id: str = "") -> None:
    """Run one step: wait for its approval if it needs one, run its prompt, keep its output and
    artifacts, go on to the next step. Idempotent per step (see the module's docstring)."""
    attempt = _step_start(step_id, celery_task_id)
    if attempt is None:
        return
    step = BuildStep.objects.select_related("build", "agent__provider", "provider").get(pk=step_id)
    try:
        outcome = run_sync(_run(step), timeout=None)
        _step_succeed(step_id, attempt, outcome)
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


def _step_start(step_id: int, celery_task_id: str) -> int | None:
    """Mark the step running; the attempt number, or None when there is nothing to run."""
    with transaction.atomic():
        step = (
            BuildStep.objects.select_for_update(of=("self",))
            .select_related("build")
            .filter(pk=step_id)
            .first()
        )
        if step is None or step.finished or step.build.finished:
            return None
        if celery_task_id and celery_task_id != step.celery_task_id:
            return None  # a message of an earlier run of this step (before a retry)
        if step.status == RunStatus.RUNNING and step.heartbeat_fresh:
            return None  # redelivered while its first worker still runs it
        if step.requires_approval and not _approved(step):
            if step.status != RunStatus.AWAITING_APPROVAL:
                _await_approval(step)
            return None
        if step.status == RunStatus.RUNNING:
            _event(step.build, step, "retried", detail="Started again after its worker was lost.")
        step.status = RunStatus.RUNNING
        step.attempts += 1
        step.celery_task_id = celery_task_id or step.celery_task_id
        step.started_at = step.heartbeat_at = timezone.now()
        step.save(
            update_fields=["status", "attempts", "celery_task_id", "started_at", "heartbeat_at"]
        )
        _event(step.build, step, "started")
        _announce_step(step)
        build = step.build
        if build.status != BuildStatus.RUNNING or build.started_at is None:
            # An approval of a first step's gate has already made it running: not yet started.
            build.status = BuildStatus.RUNNING
            build.started_at = build.started_at or step.started_at
            build.save(update_fields=["status", "started_at"])
            _event(build, None, "started")
            _announce_build(build)
        if step.agent_id:
            _agent_activity(step, "started", "")
        return step.attempts


async def _run(step: BuildStep) -> RunOutcome:
    build = step.build
    outputs = await sync_to_async(_earlier_outputs)(step)
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
        caller=Caller(user_id=build.created_by_id),
        entry_point=EntryPoint.BUILD,
        attribution=Attribution(agent_id=step.agent_id, build_id=build.pk, build_step_id=step.pk),
        on_token=on_token,
        still_wanted=partial(_still_wanted, step.pk, step.attempts),
    )


async def _still_wanted(step_id: int, attempt: int) -> bool:
    """A connection per heartbeat (``database_sync_to_async`` gives it back to the pool): one
    kept across a database restart would be dead for every heartbeat after it. While the
    database does not answer the step goes on; the sweep is the backstop."""
    try:
        return await database_sync_to_async(_heartbeat)(step_id, attempt)
    except Exception as error:
        if not is_database_unavailable(error):
            raise
        logger.warning("build step %s: could not report its heartbeat (%s)", step_id, error)
        return True


def _heartbeat(step_id: int, attempt: int) -> bool:
    """Report the step alive; whether it should go on (False once cancelled, swept or taken
    over by a later attempt)."""
    updated = BuildStep.objects.filter(
        pk=step_id, status=RunStatus.RUNNING, attempts=attempt
    ).update(heartbeat_at=timezone.now())
    return updated == 1


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
def _step_succeed(step_id: int, attempt: int, outcome: RunOutcome) -> None:
    with transaction.atomic():
        step = _running_attempt(step_id, attempt)
        if step is None:
            return
        step.output = outcome.text
        step.input_tokens = outcome.input_tokens
        step.output_tokens = outcome.output_tokens
        step.cost = outcome.cost
        step.call_id = outcome.call_id
        step.save(update_fields=["output", "input_tokens", "output_tokens", "cost", "call_id"])
        artifacts_store_for_step(step=step, text=outcome.text)
        _step_finish(step, RunStatus.SUCCEEDED, "")
        build = Build.objects.select_for_update().get(pk=step.build_id)
        Build.objects.filter(pk=build.pk).update(
            input_tokens=F("input_tokens") + outcome.input_tokens,
            output_tokens=F("output_tokens") + outcome.output_tokens,
            cost=F("cost") + outcome.cost,
        )
        build.refresh_from_db()
        following = build.steps.filter(position__gt=step.position).order_by("position").first()
        if following is None:
            _build_finish(build, BuildStatus.SUCCEEDED, "")
        else:
            _enqueue(following)


@retry_while_database_unavailable("BUILD_STEP_STALE_SECONDS")
def _step_fail(step_id: int, attempt: int, message: str, call_id: uuid.UUID | None) -> None:
    with transaction.atomic():
        step = _running_attempt(step_id, attempt)
        if step is None:
            return
        step.call_id = call_id
        step.save(update_fields=["call_id"])
        _fail(step, message)


def _fail(step: BuildStep, message: str) -> None:
    """Fail a step and its build (the steps after it stay pending, for a retry)."""
    _step_finish(step, RunStatus.FAILED, message)
    build = Build.objects.select_for_update().get(pk=step.build_id)
    if not build.finished:
        _build_finish(build, BuildStatus.FAILED, f"Step {step.name}: {message}")


def _step_finish(step: BuildStep, status: str, error: str) -> None:
    step.status = status
    step.error = error[:500]
    step.finished_at = timezone.now()
    step.save(update_fields=["status", "error", "finished_at"])
    _event(step.build, step, status, detail=error)
    _announce_step(step)
    _agent_activity(step, status, error)


def _agent_activity(step: BuildStep, what: str, error: str) -> None:
    if step.agent is None:
        return
    message = f"Build #{step.build_id}: {step.name}" + (f": {error}" if error else "")
    agent_activity_add(
        agent=step.agent, event=f"step_{what}", message=message[:500], build_step_id=step.pk
    )


def _build_finish(build: Build, status: str, error: str) -> None:
    build.status = status
    build.error = error[:500]
    build.finished_at = timezone.now()
    build.save(update_fields=["status", "error", "finished_at"])
    _event(build, None, status, detail=error)
    _announce_build(build)


def _enqueue(step: BuildStep | None) -> None:
    """Queue a step: its task id is stored with it before the message leaves (on commit)."""
    if step is None:
        return
    from ..tasks import run_step

    step.status = RunStatus.QUEUED
    step.celery_task_id = str(uuid.uuid4())
    step.queued_at = timezone.now()
    step.save(update_fields=["status", "celery_task_id", "queued_at"])
    _event(step.build, step, "queued")
    _announce_step(step)
    send_on_commit(
        run_step, args=[step.pk], task_id=step.celery_task_id, queue=settings.BUILD_TASK_QUEUE
    )


# --- approvals -------------------------------------------------------------------------------


def _approved(step: BuildStep) -> bool:
    return step.approval is not None and step.approval.status == ApprovalStatus.APPROVED


def _await_approval(step: BuildStep) -> None:
    build = step.build
    approval = approval_request_create(
        kind=APPROVAL_KIND,
        action=f"Run step {step.position} ({step.name}) of build #{build.pk}: {build.title}",
        reference=f"build_step:{step.pk}",
        risk_level=step.approval_risk,
        context={"build": build.pk, "step": step.pk, "title": build.title, "step_name": step.name},
        requested_by=build.created_by,
    )
    step.approval = approval
    step.status = RunStatus.AWAITING_APPROVAL
    step.save(update_fields=["approval", "status"])
    _event(build, step, "awaiting_approval", detail=f"Approval request #{approval.pk}")
    _announce_step(step)
    build.status = BuildStatus.AWAITING_APPROVAL
    build.save(update_fields=["status"])
    _announce_build(build)
    if approval.status != ApprovalStatus.PENDING:  # approved at once by the approval policy
        approval_decided_receiver(sender=ApprovalRequest, approval=approval)


def approval_decided_receiver(sender: type, approval: ApprovalRequest, **kwargs: Any) -> None:
    """An approval a step waits for was decided or expired: go on, or fail the build."""
    if approval.kind != APPROVAL_KIND:
        return
    step = (
        BuildStep.objects.select_for_update(of=("self",)).select_related("build", "agent")
        .filter(approval=approval, status=RunStatus.AWAITING_APPROVAL).first()
    )  # fmt: skip
    if step is None:
        return
    build = Build.objects.select_for_update().get(pk=step.build_id)
    if approval.status == ApprovalStatus.APPROVED:
        _event(build, step, "approved", detail=approval.decision_notes)
        build.status = BuildStatus.RUNNING
        build.save(update_fields=["status"])
        _announce_build(build)
        _enqueue(step)
        return
    reason = approval.decision_notes or ""
    what = "Rejected" if approval.status == ApprovalStatus.REJECTED else "Approval expired"
    _event(build, step, approval.status, detail=reason)
    _fail(step, f"{what}: {reason}" if reason else f"{what}.")


# --- the sweep -------------------------------------------------------------------------------


def builds_sweep() -> int:
    """Fail the steps whose worker vanished (no heartbeat for ``BUILD_STEP_STALE_SECONDS``),
    and their builds, so nothing stays running forever; send again the message of steps queued
    that long and not started (the broker was away when they were queued). Returns how many
    steps it failed or sent again."""
    return _steps_resend() + _steps_fail_stale()


def _steps_resend() -> int:
    from ..tasks import run_step

    def note(step: BuildStep) -> None:
        _event(step.build, step, "resent", detail="Not started yet: its message sent again.")

    return resend_stale_queued(
        BuildStep, run_step, status=RunStatus.QUEUED, queue=settings.BUILD_TASK_QUEUE,
        on_resent=note,
    )  # fmt: skip


def _steps_fail_stale() -> int:
    cutoff = stale_before()
    stale = BuildStep.objects.filter(status=RunStatus.RUNNING, heartbeat_at__lt=cutoff)
    failed = 0
    for step_id in stale.values_list("pk", flat=True):
        with transaction.atomic():
            step = (
                BuildStep.objects.select_for_update(of=("self",))
                .select_related("build", "agent")
                .get(pk=step_id)
            )
            if (
                step.status == RunStatus.RUNNING
                and step.heartbeat_at
                and step.heartbeat_at < cutoff
            ):
                _fail(step, "Its worker stopped reporting (lost or killed).")
                failed += 1
    return failed


# --- events ----------------------------------------------------------------------------------


def _event(build: Build, step: BuildStep | None, event: str, detail: str = "") -> None:
    BuildEvent.objects.create(
        build=build, step=step, event=event, detail=detail[:500],
        status=(step.status if step else build.status),
        attempt=step.attempts if step else 0,
        celery_task_id=step.celery_task_id if step else "",
    )  # fmt: skip


def _announce_build(build: Build) -> None:
    data = {"build": build.pk, "title": build.title, "status": build.status, "error": build.error}
    publish_on_commit("builds", "build.updated", data)
    publish_on_commit(f"build:{build.pk}", "build.status", data)


def _announce_step(step: BuildStep) -> None:
    publish_on_commit(
        f"build:{step.build_id}", "build.step",
        {"build": step.build_id, "step": step.pk, "position": step.position, "name": step.name,
         "status": step.status, "error": step.error, "attempt": step.attempts},
    )  # fmt: skip


# --- the /ws/ protocol's "build" message -----------------------------------------------------


def build_socket_action(message: dict[str, Any], user: User) -> SocketReply:
    """``{"type": "build", "id": ..., "title", "input", "steps": [...]}`` or ``"template": id``:
    starts a build as ``POST /api/v1/builds`` does; the client follows it on ``build:<id>``."""
    title, build_input = message.get("title", ""), message.get("input", "")
    if not isinstance(title, str) or not isinstance(build_input, str):
        raise ValidationError("'title' and 'input' are strings.")
    if "template" in message:
        template = BuildTemplate.objects.filter(pk=message["template"]).first() if isinstance(
            message["template"], int) else None  # fmt: skip
        if template is None:
            raise ValidationError({"template": "No such template."})
        build = build_create_from_template(template=template, by=user, input=build_input,
                                           title=title)  # fmt: skip
    else:
        if not title:
            raise ValidationError({"title": "Required."})
        build = build_create(title=title, input=build_input, steps=message.get("steps"), by=user)
    return SocketReply(
        {"build": build.pk, "status": build.status, "steps": build.steps.count()},
        subscribe=f"build:{build.pk}",
    )
