"""Creating builds: their steps checked (``build_steps_validate``), the build written with its
first step queued; the templates builds are made from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction

from apps.agents.models import Agent
from apps.approvals.models import RiskLevel
from apps.core.errors import validation_messages
from apps.providers.models import Provider

from .. import prompts
from ..models import Build, BuildStep, BuildTemplate, RunStatus
from ..plugins import LLM, input_sources, step_kind_names, step_kinds
from .transitions import announce_build, event_record, step_enqueue

MAX_STEPS = 20
STEP_FIELDS = (
    "name",
    "kind",
    "options",
    "prompt",
    "agent",
    "model",
    "provider",
    "temperature",
    "max_tokens",
    "requires_approval",
    "approval_risk",
)
TEMPLATE_FIELDS = ("name", "description", "steps")
LLM_ONLY_FIELDS = ("agent", "model", "provider", "temperature", "max_tokens")


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
    kind: str = LLM
    options: Mapping[str, Any] | None = None


def build_steps_validate(steps: Any, build_input: str = "") -> list[StepSpec]:
    """The steps of a build or template, checked: a list of objects, each with a unique
    ``name`` and a ``prompt`` whose placeholders name earlier steps and which, rendered with
    ``build_input``, stays within ``PROMPT_MAX_BYTES``, run by an ``agent`` (id or name) or a
    model config (``model``, ``provider``, ``temperature``, ``max_tokens``); a step with
    ``requires_approval`` may give its gate's ``approval_risk`` (medium when left out). A step
    of another ``kind`` (``apps.builds.plugins``) takes the kind's ``options`` instead of a model;
    its prompt, its text, defaults to the kind's (``{previous}``)."""
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
            problems.extend(f"Step {number}: {text}" for text in validation_messages(error))
    if problems:
        raise ValidationError({"steps": problems})
    return specs


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
    kind_name = raw.get("kind", LLM)
    if kind_name not in step_kind_names():
        raise ValidationError({"kind": f"One of {', '.join(step_kind_names())}."})
    options = raw.get("options", {})
    if not isinstance(options, Mapping):
        raise ValidationError({"options": "An object."})
    prompt = raw.get("prompt")
    if kind_name == LLM:
        if options:
            raise ValidationError({"options": "Only for a step of another kind than llm."})
    else:
        kind = step_kinds[kind_name]
        given = sorted(field for field in LLM_ONLY_FIELDS if raw.get(field) not in (None, ""))
        if given:
            raise ValidationError({field: f"Not for a {kind_name} step." for field in given})
        kind.validate(options)
        if prompt is None:
            prompt = kind.default_prompt
    if not isinstance(prompt, str):
        raise ValidationError({"prompt": "A string."})
    problems = prompts.template_errors(prompt, earlier, build_input)
    if problems:
        raise ValidationError({"prompt": problems})
    step = BuildStep(
        name=name,
        prompt_template=prompt,
        model=_text(raw, "model"),
        temperature=raw.get("temperature"),
        max_tokens=raw.get("max_tokens"),
        requires_approval=_flag(raw, "requires_approval"),
        approval_risk=_approval_risk(raw),
    )
    step.agent = _agent(raw.get("agent"))
    step.provider = _provider(raw.get("provider"))
    step.clean_fields(exclude=["build", "position", "output", "error"])
    return StepSpec(
        name=name,
        prompt=prompt,
        agent=step.agent,
        model=step.model,
        provider=step.provider,
        temperature=step.temperature,
        max_tokens=step.max_tokens,
        requires_approval=step.requires_approval,
        approval_risk=step.approval_risk,
        kind=kind_name,
        options=dict(options),
    )


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
    github_issue: str = "",
) -> Build:
    """Create a build and enqueue its first step. With ``github_issue`` (``owner/repo#123``, or
    ``#123`` in the default repository) the issue's title, body and comments are the input,
    followed by ``input`` if one is given, and its title the build's if none is given."""
    if github_issue:
        source = input_sources.get("github_issue")
        if source is None:
            raise ValidationError({"github_issue": "The GitHub app is not installed."})
        resolved = source.resolve(github_issue)
        github_issue = resolved.reference
        input = f"{resolved.text}\n\n{input}" if input.strip() else resolved.text
        title = title.strip() or resolved.title[:200]
    if "\x00" in input:
        raise ValidationError({"input": "NUL characters (\\u0000) are not accepted."})
    if len(input.encode("utf-8", "surrogatepass")) > settings.PROMPT_MAX_BYTES:
        raise ValidationError(
            {"input": f"At most {settings.PROMPT_MAX_BYTES:,} bytes (PROMPT_MAX_BYTES)."}
        )
    specs = build_steps_validate(steps, input)
    build = Build(
        title=title, input=input, template=template, created_by=by, github_issue=github_issue
    )
    build.full_clean(exclude=["created_by", "template"])
    with transaction.atomic():
        build.save()
        for position, spec in enumerate(specs, start=1):
            BuildStep.objects.create(
                build=build,
                position=position,
                name=spec.name,
                prompt_template=spec.prompt,
                agent=spec.agent,
                model=spec.model,
                provider=spec.provider,
                temperature=spec.temperature,
                max_tokens=spec.max_tokens,
                requires_approval=spec.requires_approval,
                approval_risk=spec.approval_risk,
                kind=spec.kind,
                options=dict(spec.options or {}),
                status=RunStatus.PENDING,
            )
        event_record(build, None, "queued")
        announce_build(build)
        step_enqueue(build.steps.order_by("position").first())
    return build


def build_create_from_template(
    *,
    template: BuildTemplate,
    by: User | None,
    input: str = "",
    title: str = "",
    github_issue: str = "",
) -> Build:
    return build_create(
        title=title or ("" if github_issue else template.name),
        input=input,
        steps=template.steps,
        by=by,
        template=template,
        github_issue=github_issue,
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
