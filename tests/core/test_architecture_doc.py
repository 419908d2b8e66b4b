"""``docs/architecture.md`` stays true: every path, module, setting, registry and code name it
gives in backticks exists, the numbers it states match the constants they come from, and the
LLM core's table lists every module of the core. The README's and every other page's paths are
checked the same way, with their relative links, and no hand-written page grows past
``MAX_PAGE_LINES``.

What a code span names is told by its shape:

- ``apps/...``, ``tests/...``, ``bench/...``, ``orchestra/...``, ``docs/...``: a file or folder
  (paths in the fenced blocks too); ``apps/core/json.loads`` is a module and one of its names;
- ``apps.x.y`` (or ``tests.``, ``orchestra.``, ``bench.``): a module, or a module's attribute;
- ``UPPER_CASE``: a Django setting (a module's constant is written with its module);
- ``register_x(...)``, ``@health_check(...)``: a function filling a registry of
  ``apps/core``, with the registered dataclass's fields where the span lists them;
- ``x.y``: a Celery task, an event type, or a module's attribute (``unfold.admin.ModelAdmin``);
- ``name.html``: a template; ``name.py``: a file of some app (of the LLM core in its section);
- ``/api/...``: a URL Django serves;
- any other name (``run_prompt``, ``LlmRequest``): a word of the code (``apps/``,
  ``orchestra/``, ``templates/``: Python, JavaScript and templates).

Spans with spaces, placeholders or punctuation (channels like ``build:<id>``) are prose. The doc's
example app, ``widgets``, is made up: its paths are skipped, and it must not exist.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.template import TemplateDoesNotExist
from django.template.loader import get_template
from django.urls import Resolver404, resolve

from apps.core.events import event_types
from apps.core.registry import Registry
from orchestra.celery import app as celery_app

REPO_ROOT = Path(__file__).resolve().parents[2]
DOC = REPO_ROOT / "docs" / "architecture.md"
README = REPO_ROOT / "README.md"
# Every page of the documentation but the generated REST reference (``manage.py api_reference``).
PAGES = sorted(
    [README, *(REPO_ROOT / "docs").rglob("*.md")],
    key=lambda path: path.as_posix(),
)
GENERATED = REPO_ROOT / "docs" / "api" / "reference"
MAX_PAGE_LINES = 400
EXAMPLE_APP = "widgets"
PATH_ROOTS = ("apps", "tests", "bench", "orchestra", "docs", "templates", "static", "nginx")
MODULE_ROOTS = ("apps", "tests", "orchestra", "bench")
FILE_SUFFIXES = {".py", ".md", ".html", ".js", ".css", ".txt", ".toml", ".yml", ".json", ".conf"}
CODE_ROOTS = ("apps", "orchestra", "templates")
CODE_SUFFIXES = {".py", ".js", ".html"}
REGISTRY_MODULES = ("apps.core.registry", "apps.core.events", "apps.core.health")
LLM_CORE = REPO_ROOT / "apps" / "providers" / "llm"
LLM_SECTION = ("## The one LLM core", "### Entry points")

# Numbers the doc states, each tied to the constant it comes from: (the doc's words, the
# constant, the value those words mean).
NUMBERS = [
    (
        "shipped to a Redis list every quarter second",
        "apps.providers.llm.recording.recorder.FLUSH_INTERVAL",
        0.25,
    ),
    ("reports a heartbeat twice a second", "apps.agents.execution.WATCH_SECONDS", 0.5),
    (
        "fails new connections at once for a second after the pool found it down",
        "apps.core.postgresql.base.REMEMBERED_SECONDS",
        1.0,
    ),
    ("at most one write a second", "apps.core.beat.HEARTBEAT_SECONDS", 1.0),
]

PATH = re.compile(rf"^(?:{'|'.join(PATH_ROOTS)})/[\w./-]*$")
FENCED_PATH = re.compile(rf"(?<![\w/.])(?:{'|'.join(PATH_ROOTS)})/[\w./-]*")
DOTTED_MODULE = re.compile(rf"^(?:{'|'.join(MODULE_ROOTS)})(?:\.\w+)+$")
SETTING = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$")
REGISTRATION = re.compile(r"^@?(register_\w+|health_check)\((.*)\)$")
INNER_DATACLASS = re.compile(r"^(\w+)\((.*)\)$")
TWO_PART_NAME = re.compile(r"^[a-z_]+\.[a-z_]+$")
DOTTED_NAME = re.compile(r"^[A-Za-z_]\w*(?:\.\w+)+$")
CALL_OR_NAME = re.compile(r"^@?([A-Za-z_]\w*)(?:\.\w+)*(?:\(.*\))?$")
URL = re.compile(r"^(?:GET |POST |PUT |PATCH |DELETE )?(/api/[\w/-]*)$")


# --- reading the Markdown --------------------------------------------------------------------


def without_fences(text: str) -> str:
    return re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)


def fenced_blocks(text: str) -> list[str]:
    return re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.M | re.S)


def code_spans(text: str) -> list[str]:
    """The inline code spans outside fenced blocks, their line breaks made spaces."""
    return [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", without_fences(text))]


def section(text: str, start: str, end: str) -> str:
    return text[text.index(start) : text.index(end)]


# --- what the code has -----------------------------------------------------------------------


def resolves(dotted: str) -> bool:
    """Whether ``dotted`` is a module, or a module's attribute (its longest importable prefix)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if not hasattr(found, name):
                return False
            found = getattr(found, name)
        return True
    return False


@cache
def code_words() -> frozenset[str]:
    words: set[str] = set()
    for root in CODE_ROOTS:
        for path in (REPO_ROOT / root).rglob("*"):
            if path.suffix in CODE_SUFFIXES and "migrations" not in path.parts:
                words.update(re.findall(r"\w+", path.read_text(errors="ignore")))
    return frozenset(words)


@cache
def app_files() -> frozenset[str]:
    return frozenset(path.as_posix() for path in (REPO_ROOT / "apps").rglob("*.py"))


@cache
def registering_functions() -> dict[str, str]:
    """Registry variable -> the function of its module that registers into it."""
    found = {}
    for name in REGISTRY_MODULES:
        module = importlib.import_module(name)
        registries = {var for var, value in vars(module).items() if isinstance(value, Registry)}
        tree = ast.parse(Path(module.__file__ or "").read_text())
        for function in tree.body:
            if not isinstance(function, ast.FunctionDef) or function.name.startswith("_"):
                continue
            for node in ast.walk(function):
                if (
                    isinstance(node, ast.Attribute)
                    and node.attr == "register"
                    and isinstance(node.value, ast.Name)
                    and node.value.id in registries
                ):
                    found[node.value.id] = function.name
    return found


@cache
def registry_classes() -> dict[str, Any]:
    """The dataclasses entries of the registries are made of (``Page``, ``Channel``...)."""
    return {
        name: value
        for module in REGISTRY_MODULES
        for name, value in vars(importlib.import_module(module)).items()
        if dataclasses.is_dataclass(value) and isinstance(value, type)
    }


@cache
def celery_task_names() -> frozenset[str]:
    celery_app.autodiscover_tasks(lambda: settings.INSTALLED_APPS, force=True)
    return frozenset(celery_app.tasks)


# --- the checks ------------------------------------------------------------------------------


def path_problem(span: str) -> str | None:
    if span.split("/")[1] == EXAMPLE_APP:
        return None
    if (REPO_ROOT / span).exists():
        return None
    head, _, last = span.rstrip("/").rpartition("/")
    stem, dot, attribute = last.partition(".")
    if dot and f".{attribute}" not in FILE_SUFFIXES:
        dotted = f"{head}/{stem}".replace("/", ".") + f".{attribute}"
        return None if resolves(dotted) else f"no module name {span}"
    return None if (REPO_ROOT / span).exists() else f"no file or folder {span}"


def registration_problem(function: str, arguments: str) -> str | None:
    if function not in registering_functions().values():
        return f"no registry is filled by {function}"
    inner = INNER_DATACLASS.match(arguments)
    if not inner:
        return None
    cls = registry_classes().get(inner[1])
    if cls is None:
        return f"{function} registers no {inner[1]}"
    fields = {field.name for field in dataclasses.fields(cls)}
    named = [arg.strip().rstrip("=") for arg in inner[2].split(",")]
    unknown = [arg for arg in named if arg.isidentifier() and arg not in fields]
    return f"{inner[1]} has no field {', '.join(unknown)}" if unknown else None


def span_problem(span: str) -> str | None:
    """What is wrong with one code span of the doc, or None (also for prose)."""
    if url := URL.match(span):
        try:
            resolve(url[1])
        except Resolver404:
            return f"no URL {url[1]}"
        return None
    if PATH.match(span):
        return path_problem(span)
    if re.match(r"^[\w/]+\.py$", span):
        known = any(path.endswith(f"/{span}") for path in app_files())
        return None if known else f"no file {span} in any app"
    if DOTTED_MODULE.match(span):
        return None if resolves(span) else f"no module or name {span}"
    if SETTING.match(span):
        return None if hasattr(settings, span) else f"no setting {span}"
    if registration := REGISTRATION.match(span):
        return registration_problem(registration[1], registration[2])
    if span.endswith(".html") and "/" in span:
        if span.split("/")[0] == EXAMPLE_APP:
            return None
        try:
            get_template(span)
        except TemplateDoesNotExist:
            return f"no template {span}"
        return None
    if TWO_PART_NAME.match(span):
        if span in celery_task_names() or span in event_types or resolves(span):
            return None
        return f"no task, event type or module name {span}"
    if DOTTED_NAME.match(span) and resolves(span):
        return None
    if name := CALL_OR_NAME.match(span):
        return None if name[1] in code_words() else f"no name {name[1]} in the code"
    return None


def doc_problems(text: str) -> list[str]:
    spans = code_spans(text)
    paths = [path for block in fenced_blocks(text) for path in FENCED_PATH.findall(block)]
    problems = [problem for span in spans if (problem := span_problem(span))]
    problems += [problem for path in paths if (problem := path_problem(path))]
    return problems


def link_problems(page: Path) -> list[str]:
    """Relative links (``[text](other.md#part)``) to files that do not exist, or to headings
    the target does not have."""
    problems = []
    for target in re.findall(r"\]\(([^)\s]+)\)", without_fences(page.read_text())):
        if re.match(r"^[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            problems.append(f"no file {target}")
        elif anchor and file.suffix == ".md" and anchor not in heading_anchors(file):
            problems.append(f"no heading #{anchor} in {file.name}")
    return problems


def heading_anchors(page: Path) -> set[str]:
    """GitHub's anchors: lower case, punctuation dropped, spaces made hyphens."""
    headings = re.findall(r"^#+ (.+)$", without_fences(page.read_text()), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def readme_problems(text: str) -> list[str]:
    spans = [span for span in code_spans(text) if PATH.match(span)]
    paths = [path for block in fenced_blocks(text) for path in FENCED_PATH.findall(block)]
    return [problem for path in [*spans, *paths] if (problem := path_problem(path))]


def unnamed_registries(text: str) -> list[str]:
    """Registries whose registering function the doc does not name."""
    named = " ".join(code_spans(text))
    return [
        f"{registry} ({function})"
        for registry, function in registering_functions().items()
        if not re.search(rf"\b{function}\(", named)
    ]


def llm_core_problems(text: str) -> list[str]:
    """The LLM core's section names its modules relative to the core's folder, and all of them."""
    spans = code_spans(section(text, *LLM_SECTION))
    named = {span for span in spans if re.match(r"^[\w/]+\.py$", span)}
    missing = sorted(name for name in named if not (LLM_CORE / name).exists())
    problems = [f"no module {name} in the LLM core" for name in missing]
    modules = {
        path.relative_to(LLM_CORE).as_posix()
        for path in LLM_CORE.rglob("*.py")
        if path.name != "__init__.py"
    }
    problems += [f"the LLM core's {module} is not in the doc" for module in modules - named]
    return sorted(problems)


def number_problems(text: str, numbers: Iterable[tuple[str, str, float]]) -> list[str]:
    prose = " ".join(text.split())
    problems = []
    for words, constant, value in numbers:
        if words not in prose:
            problems.append(f"the doc no longer says {words!r}")
        module, _, name = constant.rpartition(".")
        actual = getattr(importlib.import_module(module), name)
        if actual != value:
            problems.append(f"{constant} is {actual}, the doc says {words!r} ({value})")
    return problems


# --- the tests -------------------------------------------------------------------------------


def test_every_name_the_architecture_doc_gives_exists():
    assert doc_problems(DOC.read_text()) == []


def test_the_doc_names_every_registry():
    registries = {
        var
        for module in REGISTRY_MODULES
        for var, value in vars(importlib.import_module(module)).items()
        if isinstance(value, Registry)
    }
    assert registries and set(registering_functions()) == registries
    assert unnamed_registries(DOC.read_text()) == []


def test_the_doc_lists_every_module_of_the_llm_core():
    assert llm_core_problems(DOC.read_text()) == []


def test_the_numbers_of_the_doc_are_the_code_s():
    assert number_problems(DOC.read_text(), NUMBERS) == []


def page_id(page: Path) -> str:
    return page.relative_to(REPO_ROOT).as_posix()


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_path_and_link_a_page_gives_exists(page: Path):
    assert readme_problems(page.read_text()) + link_problems(page) == []


@pytest.mark.parametrize(
    "page", [page for page in PAGES if GENERATED not in page.parents], ids=page_id
)
def test_no_hand_written_page_is_too_long(page: Path):
    assert len(page.read_text().splitlines()) <= MAX_PAGE_LINES


def test_the_link_checker_finds_a_missing_page_and_heading(tmp_path: Path):
    (tmp_path / "a.md").write_text("# A page\n\n## Its part\n\n[ok](#its-part) [ok](a.md#a-page)")
    page = tmp_path / "b.md"
    page.write_text("[x](nowhere.md) [y](a.md#elsewhere) [z](a.md#its-part) [w](https://x.org/a)")
    assert link_problems(page) == ["no file nowhere.md", "no heading #elsewhere in a.md"]
    assert link_problems(tmp_path / "a.md") == []


def test_the_example_app_is_made_up():
    assert not (REPO_ROOT / "apps" / EXAMPLE_APP).exists()
    assert not (REPO_ROOT / "tests" / EXAMPLE_APP).exists()


# --- the checker on made-up text --------------------------------------------------------------

FABRICATED = {
    "`apps/core/nowhere.py`": "no file or folder apps/core/nowhere.py",
    "`apps/core/json.dumps_everything`": "no module name apps/core/json.dumps_everything",
    "`apps.core.registry.register_gadgets`": "no module or name",
    "`apps.core.nowhere`": "no module or name apps.core.nowhere",
    "`GADGET_TIMEOUT_SECONDS`": "no setting GADGET_TIMEOUT_SECONDS",
    "`register_gadgets(Gadget(name))`": "no registry is filled by register_gadgets",
    "`register_pages(Gadget(slug))`": "register_pages registers no Gadget",
    "`register_pages(Page(slug, title, colour=))`": "Page has no field colour",
    "`builds.polish`": "no task, event type or module name builds.polish",
    "`gadget_polish_everything`": "no name gadget_polish_everything in the code",
    "`GadgetPolisher.run()`": "no name GadgetPolisher in the code",
    "`dashboard/includes/gadgets.html`": "no template dashboard/includes/gadgets.html",
    "`gadget_store.py`": "no file gadget_store.py in any app",
    "`GET /api/v1/gadgets`": "no URL /api/v1/gadgets",
    "```\napps/gadgets/   what gadgets do\n```": "no file or folder apps/gadgets/",
}

TRUE = """Real names: `apps/core/registry.py`, `apps/core/json.loads`, `apps.providers.llm`,
`apps.core.dispatch.send_on_commit`, `TRUSTED_PROXIES`, `register_channels(Channel(...))`,
`register_pages(Page(slug, title, view, section, icon=, in_sidebar=))`, `builds.sweep`,
`build.token`, `unfold.admin.ModelAdmin`, `run_prompt`, `LlmRequest`, `models.py`,
`core/live_page.html`, `GET /api/v1/feature-status`, and prose: `build:<id>`,
`{"type": "event"}`, `Retry-After`; the example app's `apps/widgets/pages.py`.

```
apps/core/          the core
apps/widgets/       made up
```
"""


@pytest.mark.parametrize("text, problem", FABRICATED.items())
def test_the_checker_finds_a_fabricated_name(text, problem):
    found = doc_problems(text)
    assert len(found) == 1 and problem in found[0], found


def test_the_checker_accepts_real_names():
    assert doc_problems(TRUE) == []


def test_the_checker_finds_an_unnamed_registry_a_stale_number_and_an_unlisted_module():
    text = DOC.read_text()
    assert unnamed_registries(text.replace("register_request_hook(", "register_hook(")) == [
        "request_hooks (register_request_hook)"
    ]
    stale = [("every quarter second", "apps.providers.llm.recording.recorder.FLUSH_INTERVAL", 1)]
    assert len(number_problems(text, stale)) == 1
    assert len(number_problems("", NUMBERS[:1])) == 1
    without_wire = text.replace("| `wire.py` |", "| `wires.py` |")
    assert llm_core_problems(without_wire) == [
        "no module wires.py in the LLM core",
        "the LLM core's wire.py is not in the doc",
    ]
