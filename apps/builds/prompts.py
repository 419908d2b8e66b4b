"""Step prompt templates: ``{input}``, ``{previous}`` and ``{steps.<name>}`` are replaced, any
other brace is left as written (prompts about code are full of them). Deliberately not
``str.format``: a template is user input, and format's attribute lookups would reach into
Python objects.

A rendered prompt is bounded by ``PROMPT_MAX_BYTES`` (UTF-8): ``{input}`` 400 times over a 1 MB
input once sent a 400 MB body upstream and took a worker past 1.5 GB. ``rendered_size`` counts
the bytes from the template and the sizes of the values, without building the string, so
``render`` refuses before it allocates anything; a template holds at most ``MAX_PLACEHOLDERS``
placeholders and ``MAX_TEMPLATE_CHARS`` characters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from django.conf import settings

from apps.core.limits import PROMPT_MAX_CHARS

STEP_NAME = re.compile(r"[A-Za-z0-9_-]{1,100}")
PLACEHOLDER = re.compile(r"\{(input|previous|steps\.([A-Za-z0-9_-]+))\}")
MAX_PLACEHOLDERS = 100
MAX_TEMPLATE_CHARS = PROMPT_MAX_CHARS


class PromptTooLargeError(ValueError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"The prompt would be {size:,} bytes once rendered, over the limit of {limit:,} "
            "(PROMPT_MAX_BYTES)."
        )
        self.size = size


def referenced_steps(template: str) -> list[str]:
    """The step names a template reads, in order."""
    return [match.group(2) for match in PLACEHOLDER.finditer(template) if match.group(2)]


def template_errors(
    template: str, earlier_steps: Sequence[str], build_input: str = ""
) -> list[str]:
    """What is wrong with a template given the names of the steps before it and, when known,
    the build's input (a prompt too large with it is refused before anything runs)."""
    errors = []
    if not template.strip():
        errors.append("The prompt is empty.")
    if "\x00" in template:  # the admin's JSON form reaches here without the API's parser
        errors.append("NUL characters (\\u0000) are not accepted.")
    placeholders = sum(1 for _ in PLACEHOLDER.finditer(template))
    if placeholders > MAX_PLACEHOLDERS:
        return [*errors, f"At most {MAX_PLACEHOLDERS} placeholders ({placeholders:,} given)."]
    if len(template) > MAX_TEMPLATE_CHARS:
        return [*errors, f"At most {MAX_TEMPLATE_CHARS:,} characters."]
    for name in referenced_steps(template):
        if name not in earlier_steps:
            errors.append(f"{{steps.{name}}} names no earlier step.")
    if "{previous}" in template and not earlier_steps:
        errors.append("{previous} in the first step: there is no earlier step.")
    # Earlier outputs are not known yet: counted as empty, this is the least it will be.
    size = rendered_size(
        template, build_input=build_input, outputs=dict.fromkeys(earlier_steps, "")
    )
    if size > settings.PROMPT_MAX_BYTES:
        errors.append(str(PromptTooLargeError(size, settings.PROMPT_MAX_BYTES)))
    return errors


def rendered_size(template: str, *, build_input: str, outputs: Mapping[str, str]) -> int:
    """The UTF-8 size of what ``render`` would return, without building it."""
    sizes: dict[str, int] = {}

    def size_of(text: str) -> int:
        if text not in sizes:
            sizes[text] = len(text.encode("utf-8", "surrogatepass"))
        return sizes[text]

    total = size_of(template)
    for match in PLACEHOLDER.finditer(template):
        value = _value(match, build_input, outputs)
        total += size_of(value) - size_of(match.group(0))
    return total


def render(template: str, *, build_input: str, outputs: Mapping[str, str]) -> str:
    """The prompt a step sends: ``outputs`` are the earlier steps' outputs, in order. Raises
    ``PromptTooLargeError`` (before building anything) past ``PROMPT_MAX_BYTES``."""
    size = rendered_size(template, build_input=build_input, outputs=outputs)
    if size > settings.PROMPT_MAX_BYTES:
        raise PromptTooLargeError(size, settings.PROMPT_MAX_BYTES)
    return PLACEHOLDER.sub(lambda match: _value(match, build_input, outputs), template)


def _value(match: re.Match[str], build_input: str, outputs: Mapping[str, str]) -> str:
    if match.group(1) == "input":
        return build_input
    if match.group(1) == "previous":
        return list(outputs.values())[-1] if outputs else ""
    return outputs.get(match.group(2), match.group(0))
