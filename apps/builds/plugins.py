"""What other apps add to builds, each from its own ``AppConfig.ready()`` (builds import none of
them):

- step kinds (``register_step_kind``): a step that is not an LLM call, run by the app that
  registers it (the GitHub app's ``github_pull_request`` and ``github_comment``). Such a step
  has the same approval gate, events, retry and page as any; its text is its prompt rendered
  like any prompt (``{input}``, ``{previous}``, ``{steps.<name>}``), its ``options`` are the
  kind's own;
- input sources (``register_input_source``): where a build's input may come from besides the
  text given (``github_issue``: an issue's title, body and comments), resolved when the build
  is created.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from apps.core.registry import Registry

LLM = "llm"


class StepFailedError(Exception):
    """A step kind's run failed; ``message`` becomes the step's error."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class StepContext:
    """What a step kind's ``run`` gets: the step and build (model instances), its rendered
    text and its options."""

    step: Any
    build: Any
    text: str
    options: Mapping[str, Any]


@dataclass(frozen=True)
class StepResult:
    """What it returns: the step's output (Markdown) and the link it made, if any."""

    output: str
    url: str = ""


@dataclass(frozen=True)
class StepKind:
    """``validate(options)`` raises ``django.core.exceptions.ValidationError`` for options the
    kind does not take; ``run(context)`` runs on a Celery worker and raises
    ``StepFailedError`` (or a ``ServiceError``) when it fails. ``default_prompt`` is the step's
    text when its prompt is left out."""

    name: str
    description: str
    run: Callable[[StepContext], StepResult]
    validate: Callable[[Mapping[str, Any]], None]
    default_prompt: str = "{previous}"


@dataclass(frozen=True)
class ResolvedInput:
    """An input source's answer: the reference as kept on the build, the text for ``{input}``
    and a title for a build given none."""

    reference: str
    text: str
    title: str


@dataclass(frozen=True)
class InputSource:
    """``resolve(reference)`` raises ``ValidationError`` for a bad reference, a ``ServiceError``
    (404, 409) when the thing it names cannot be read."""

    name: str
    description: str
    resolve: Callable[[str], ResolvedInput]


step_kinds: Registry[StepKind] = Registry("build step kind")
input_sources: Registry[InputSource] = Registry("build input source")


def register_step_kind(kind: StepKind) -> StepKind:
    if kind.name == LLM:
        raise ValueError(f"{LLM!r} is the builds' own step kind")
    return step_kinds.register(kind.name, kind)


def register_input_source(source: InputSource) -> InputSource:
    return input_sources.register(source.name, source)


def step_kind_names() -> list[str]:
    return [LLM, *step_kinds]
