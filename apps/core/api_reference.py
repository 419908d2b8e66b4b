"""The REST API reference in ``docs/api/reference/``, written from the OpenAPI schema.

The schema is the one ``/api/schema/`` serves (drf-spectacular, with the ``/v1`` and SSE paths
its post-processing hook adds), so the reference says what the code does. Operations are grouped
by the app whose view serves them, one Markdown page per app, each followed by the schemas its
operations use. ``manage.py api_reference`` writes the pages; ``--check`` says whether the
committed ones are current (a test runs it).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.urls import Resolver404, resolve
from drf_spectacular.generators import SchemaGenerator

Schema = dict[str, Any]

REFERENCE_DIR = Path(settings.BASE_DIR) / "docs" / "api" / "reference"
INDEX = "README.md"
METHODS = ("get", "post", "put", "patch", "delete")
SCHEMA_PREFIX = "#/components/schemas/"
# Paths Django does not route (``/v1`` is served at the ASGI level) belong to the gateway.
UNROUTED_GROUP = "gateway"


def openapi_schema() -> Schema:
    return SchemaGenerator().get_schema(request=None, public=True)


def reference_pages(schema: Schema) -> dict[str, str]:
    """File name -> Markdown: an index and one page per app."""
    groups: dict[str, list[tuple[str, str, Schema]]] = {}
    for path, item in schema["paths"].items():
        for method in METHODS:
            if method in item:
                groups.setdefault(_group(path), []).append((path, method, item[method]))
    components = schema.get("components", {}).get("schemas", {})
    pages = {
        f"{group}.md": _page(group, operations, components) for group, operations in groups.items()
    }
    pages[INDEX] = _index(schema, groups)
    return dict(sorted(pages.items()))


def stale_pages(schema: Schema, directory: Path = REFERENCE_DIR) -> list[str]:
    """The pages that differ from what the schema gives, are missing or are left over."""
    expected = reference_pages(schema)
    found = {path.name for path in directory.glob("*.md")} if directory.exists() else set()
    stale = [
        name
        for name, text in expected.items()
        if name not in found or (directory / name).read_text() != text
    ]
    return sorted(stale + [name for name in found if name not in expected])


def write_pages(schema: Schema, directory: Path = REFERENCE_DIR) -> list[str]:
    pages = reference_pages(schema)
    directory.mkdir(parents=True, exist_ok=True)
    for path in directory.glob("*.md"):
        if path.name not in pages:
            path.unlink()
    for name, text in pages.items():
        (directory / name).write_text(text)
    return list(pages)


def _group(path: str) -> str:
    try:
        match = resolve(re.sub(r"\{[^}]+\}", "1", path))
    except Resolver404:
        return UNROUTED_GROUP
    parts = match.func.__module__.split(".")
    return parts[1] if parts[0] == "apps" else parts[0]


def _title(group: str) -> str:
    try:
        return str(apps.get_app_config(group).verbose_name)
    except LookupError:
        return group.capitalize()


def _index(schema: Schema, groups: dict[str, list[tuple[str, str, Schema]]]) -> str:
    info = schema["info"]
    lines = [
        f"# {info['title']} {info['version']}: REST reference",
        "",
        "Generated from the OpenAPI schema (`/api/schema/`) by `manage.py api_reference`; do not",
        "edit by hand. The WebSocket and SSE protocols are in",
        "[../websocket-and-sse.md](../websocket-and-sse.md).",
        "",
        "| area | operations |",
        "| --- | --- |",
    ]
    for group in sorted(groups):
        lines.append(f"| [{_title(group)}]({group}.md) | {len(groups[group])} |")
    return "\n".join(lines) + "\n"


def _page(group: str, operations: list[tuple[str, str, Schema]], components: Schema) -> str:
    lines = [f"# {_title(group)}", "", "[All areas](README.md)", ""]
    used: list[str] = []
    for path, method, operation in sorted(operations, key=lambda op: (op[0], METHODS.index(op[1]))):
        lines += _operation(path, method, operation, used)
    names = _closure(used, components)
    if names:
        lines += ["## Schemas", ""]
        for name in names:
            lines += _component(name, components[name], used=[])
    return "\n".join(lines).rstrip() + "\n"


def _operation(path: str, method: str, operation: Schema, used: list[str]) -> list[str]:
    lines = [f"## `{method.upper()} {path}`", ""]
    for text in (operation.get("summary"), operation.get("description")):
        if text:
            lines += [_one_line(text), ""]
    parameters = operation.get("parameters", [])
    if parameters:
        lines += [
            "| parameter | in | type | required | description |",
            "| --- | --- | --- | --- | --- |",
        ]
        for parameter in parameters:
            lines.append(
                f"| `{parameter['name']}` | {parameter['in']} "
                f"| {_type(parameter.get('schema', {}), used)} "
                f"| {'yes' if parameter.get('required') else 'no'} "
                f"| {_cell(parameter.get('description', ''))} |"
            )
        lines.append("")
    body = operation.get("requestBody")
    if body:
        content = body.get("content", {})
        media = "application/json" if "application/json" in content else next(iter(content), "")
        schema = content.get(media, {}).get("schema", {})
        required = "required" if body.get("required") else "optional"
        lines += [f"Body ({media}, {required}): {_type(schema, used)}", ""]
    lines += ["| status | answer |", "| --- | --- |"]
    for status, response in sorted(operation.get("responses", {}).items()):
        kinds = [
            f"{_type(media.get('schema', {}), used)} ({name})"
            if name != "application/json"
            else _type(media.get("schema", {}), used)
            for name, media in response.get("content", {}).items()
        ]
        text = "; ".join(filter(None, [_cell(response.get("description", "")), *kinds]))
        lines.append(f"| {status} | {text or 'no body'} |")
    return [*lines, ""]


def _component(name: str, schema: Schema, used: list[str]) -> list[str]:
    lines = [f"### {name}", ""]
    if schema.get("description"):
        lines += [_one_line(schema["description"]), ""]
    properties = schema.get("properties")
    if not properties:
        return [*lines, f"{_type(schema, used)}", ""]
    required = set(schema.get("required", []))
    lines += ["| field | type | required | description |", "| --- | --- | --- | --- |"]
    for field, value in properties.items():
        flags = [flag for flag in ("readOnly", "writeOnly") if value.get(flag)]
        description = " ".join([*(f"({flag})" for flag in flags), value.get("description", "")])
        lines.append(
            f"| `{field}` | {_type(value, used)} | {'yes' if field in required else 'no'} "
            f"| {_cell(description.strip())} |"
        )
    return [*lines, ""]


def _type(schema: Schema, used: list[str]) -> str:
    """A short, readable type: ``string``, ``array of [Provider](#provider)``, an enum's values."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix(SCHEMA_PREFIX)
        if name not in used:
            used.append(name)
        return f"[{name}](#{name.lower()})"
    for combinator, joiner in (("oneOf", " or "), ("anyOf", " or "), ("allOf", " and ")):
        if combinator in schema:
            text = joiner.join(_type(part, used) for part in schema[combinator])
            return f"{text}, nullable" if schema.get("nullable") else text
    if "enum" in schema:
        text = " \\| ".join(f"`{value}`" for value in schema["enum"] if value not in ("", None))
    elif schema.get("type") == "array":
        text = f"array of {_type(schema.get('items', {}), used)}"
    else:
        text = str(schema.get("type", "any"))
        # An integer's format (int32, int64) follows the database's column ranges: left out, so
        # the reference is the same whichever database generated it.
        if schema.get("format") and text == "string":
            text += f" ({schema['format']})"
    return f"{text}, nullable" if schema.get("nullable") else text


def _closure(names: list[str], components: Schema) -> list[str]:
    """The named schemas and every schema they refer to, in order of first use."""
    found: list[str] = []
    pending = list(names)
    while pending:
        name = pending.pop(0)
        if name in found or name not in components:
            continue
        found.append(name)
        refs: list[str] = []
        _component(name, components[name], used=refs)
        pending += refs
    return found


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _cell(text: str) -> str:
    return _one_line(text).replace("|", "\\|")
