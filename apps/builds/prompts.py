"""Step prompt templates: ``{input}``, ``{previous}`` and ``{steps.<name>}`` are replaced, any
other brace is left as written (prompts about code are full of them). Deliberately not
``str.format``: a template is user input, and format's attribute lookups would reach into
Python objects."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

STEP_NAME = re.compile(r"[A-Za-z0-9_-]{1,100}")
PLACEHOLDER = re.compile(r"\{(input|previous|steps\.([A-Za-z0-9_-]+))\}")


def referenced_steps(template: str) -> list[str]:
    """The step names a template reads, in order."""
    return [match.group(2) for match in PLACEHOLDER.finditer(template) if match.group(2)]


def template_errors(template: str, earlier_steps: Sequence[str]) -> list[str]:
    """What is wrong with a template given the names of the steps before it."""
    errors = []
    if not template.strip():
        errors.append("The prompt is empty.")
    for name in referenced_steps(template):
        if name not in earlier_steps:
            errors.append(f"{{steps.{name}}} names no earlier step.")
    if "{previous}" in template and not earlier_steps:
        errors.append("{previous} in the first step: there is no earlier step.")
    return errors


def render(template: str, *, build_input: str, outputs: Mapping[str, str]) -> str:
    """The prompt a step sends: ``outputs`` are the earlier steps' outputs, in order."""
    previous = list(outputs.values())[-1] if outputs else ""

    def value(match: re.Match[str]) -> str:
        if match.group(1) == "input":
            return build_input
        if match.group(1) == "previous":
            return previous
        return outputs.get(match.group(2), match.group(0))

    return PLACEHOLDER.sub(value, template)
