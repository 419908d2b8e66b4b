"""The apps' dependencies: each app's public face, no cycle between apps, nothing from orchestra.

Each app says in its ``apps.py`` what other apps may use of it, its public face:

- ``PUBLIC``: the modules other apps may import, dotted and relative to the app
  (``{"models", "selectors", "services", "templatetags.dashboard"}``); a package listed is its
  ``__init__`` and what that binds, not its sub-modules (``"llm"`` is ``apps.providers.llm``);
- ``PUBLIC_TEMPLATES`` and ``PUBLIC_STATIC`` (optional): the templates other apps' templates may
  extend or include, the static files they may load (``fnmatch`` patterns).

A dependency is a Python import (top level or inside a function) or, from a template, an
``extends``, ``include``, ``static`` or ``load`` (of a template tag library) that names a file of
another app. Every dependency must name the other app's face; from that face's ``selectors`` or
``services`` an app takes functions (and their exceptions) only, not constants or helper classes.
Dependencies between apps form no cycle, so "below" is well defined: an app depends only on
apps below it. No app publishes its ``pages`` (a page's view belongs to its app), and no app
imports the project (``orchestra``): it is the project that assembles the apps.
"""

from __future__ import annotations

import ast
import fnmatch
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

APPS_DIR = Path(__file__).resolve().parents[2] / "apps"
FACE_NAMES = ("PUBLIC", "PUBLIC_TEMPLATES", "PUBLIC_STATIC")
# The modules whose names another app may take only if they are functions or exceptions.
FUNCTION_MODULES = {"selectors", "services"}
PUBLISHED_FILES = {"template": "PUBLIC_TEMPLATES", "static": "PUBLIC_STATIC"}
TEMPLATE_TAG = re.compile(
    r"""{%\s*(?:(extends|include)\s+["']([^"']+)["']|load\s+([^%]+?))\s*%}"""
    r"""|{%\s*static\s+["']([^"']+)["']"""
)


@dataclass(frozen=True)
class Dependency:
    source: str  # the depending file, relative to the apps' directory
    app: str
    target: str  # the app depended on
    kind: str  # module, template or static
    name: str  # module: dotted within the target ("" for its package); else the file's path
    names: tuple[str, ...] = ()  # the names taken from a module (``from module import names``)

    def __str__(self) -> str:
        taken = f" ({', '.join(self.names)})" if self.names else ""
        return f"{self.source} -> {self.target}: {self.kind} {self.name or '__init__'}{taken}"


class Tree:
    """The apps under ``root`` (a directory of apps, named ``apps`` like the real one)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.apps = sorted(p.name for p in root.iterdir() if (p / "__init__.py").exists())
        self._parsed: dict[Path, ast.Module] = {}

    def parse(self, path: Path) -> ast.Module:
        if path not in self._parsed:
            self._parsed[path] = ast.parse(path.read_text(), str(path))
        return self._parsed[path]

    def file_of(self, module: str) -> Path | None:
        """The file of a dotted module under the root (``apps.x.y``), or None."""
        path = self.root.parent.joinpath(*module.split("."))
        for candidate in (path.with_suffix(".py"), path / "__init__.py"):
            if candidate.exists():
                return candidate
        return None

    def python_files(self):
        for path in sorted(self.root.rglob("*.py")):
            if "migrations" not in path.relative_to(self.root).parts:
                yield path

    # --- faces ----------------------------------------------------------------------------

    def face(self, app: str) -> dict[str, frozenset[str]]:
        """The app's ``PUBLIC*`` sets as its ``apps.py`` writes them (literals)."""
        found = {name: frozenset[str]() for name in FACE_NAMES}
        declared = set()
        path = self.root / app / "apps.py"
        if path.exists():
            for node in self.parse(path).body:
                if not isinstance(node, ast.Assign | ast.AnnAssign) or node.value is None:
                    continue
                target = node.targets[0] if isinstance(node, ast.Assign) else node.target
                if isinstance(target, ast.Name) and target.id in FACE_NAMES:
                    value = node.value
                    if isinstance(value, ast.Call):  # frozenset({...})
                        value = value.args[0] if value.args else ast.Set(elts=[])
                    found[target.id] = frozenset(ast.literal_eval(value))
                    declared.add(target.id)
        return found if "PUBLIC" in declared else {**found, "undeclared": frozenset({"PUBLIC"})}

    # --- Python ---------------------------------------------------------------------------

    def _module_name(self, path: Path) -> str:
        parts = path.relative_to(self.root.parent).with_suffix("").parts
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    def _binds(self, path: Path, name: str) -> ast.stmt | None:
        """The top-level statement of ``path`` that binds ``name``, if one does."""
        for node in self.parse(path).body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                if node.name == name:
                    return node
            elif isinstance(node, ast.Import | ast.ImportFrom):
                if any((a.asname or a.name.split(".")[0]) == name for a in node.names):
                    return node
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                    return node
        return None

    def _absolute(self, path: Path, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        package = self._module_name(path)
        if path.name != "__init__.py":
            package = package.rpartition(".")[0]
        base = package.split(".")
        base = base[: len(base) - (node.level - 1)]
        return ".".join(base + ([node.module] if node.module else []))

    def imports(self, path: Path) -> list[tuple[str, tuple[str, ...]]]:
        """(module, names taken from it) for every import in ``path``, made absolute: in
        ``from package import x`` x is the package's if its ``__init__`` binds x, else the
        sub-module x (as Python resolves it)."""
        found: list[tuple[str, tuple[str, ...]]] = []
        for node in ast.walk(self.parse(path)):
            if isinstance(node, ast.Import):
                found.extend((alias.name, ()) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                module = self._absolute(path, node)
                file = self.file_of(module)
                package = file if file is not None and file.name == "__init__.py" else None
                names = []
                for alias in node.names:
                    submodule = f"{module}.{alias.name}"
                    bound = package is not None and self._binds(package, alias.name)
                    if self.file_of(submodule) and not bound:
                        found.append((submodule, ()))
                    else:
                        names.append(alias.name)
                if names or not node.names:
                    found.append((module, tuple(names)))
        return found

    def kind_of(self, module: str, name: str, seen: int = 0) -> str:
        """What ``module`` binds as ``name``: function, exception, class, value or unknown,
        following re-exports (``from .x import name``)."""
        file = self.file_of(module)
        node = self._binds(file, name) if file else None
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            return "function"
        if isinstance(node, ast.ClassDef):
            bases = [ast.unparse(base).rpartition(".")[2] for base in node.bases]
            exception = any(base.endswith(("Error", "Exception")) for base in bases)
            return "exception" if exception or name.endswith("Error") else "class"
        if isinstance(node, ast.Assign | ast.AnnAssign):
            return "value"
        if isinstance(node, ast.ImportFrom) and file and seen < 5:
            alias = next(a for a in node.names if (a.asname or a.name) == name)
            return self.kind_of(self._absolute(file, node), alias.name, seen + 1)
        return "unknown"

    # --- templates ------------------------------------------------------------------------

    def owner(self, folder: str, name: str) -> str | None:
        """The app whose ``folder`` (templates, static) holds ``name``."""
        return next((app for app in self.apps if (self.root / app / folder / name).is_file()), None)

    def library_owner(self, library: str) -> str | None:
        return next(
            (a for a in self.apps if (self.root / a / "templatetags" / f"{library}.py").is_file()),
            None,
        )

    # --- every dependency -----------------------------------------------------------------

    def dependencies(self) -> list[Dependency]:
        found: list[Dependency] = []
        for path in self.python_files():
            source = str(path.relative_to(self.root))
            app = source.split("/")[0]
            for module, names in self.imports(path):
                parts = module.split(".")
                if parts[0] == self.root.name and len(parts) > 1 and parts[1] != app:
                    found.append(
                        Dependency(source, app, parts[1], "module", ".".join(parts[2:]), names)
                    )
        for path in sorted(self.root.glob("*/templates/**/*.html")):
            source = str(path.relative_to(self.root))
            app = source.split("/")[0]
            for match in TEMPLATE_TAG.finditer(path.read_text()):
                tag, template, libraries, static = match.groups()
                if template:
                    target, kind, name = self.owner("templates", template), "template", template
                    if target not in (None, app):
                        found.append(Dependency(source, app, target, kind, name))
                elif static:
                    target = self.owner("static", static)
                    if target not in (None, app):
                        found.append(Dependency(source, app, target, "static", static))
                else:
                    words = libraries.split()
                    for library in words[words.index("from") + 1 :] if "from" in words else words:
                        target = self.library_owner(library)
                        if target not in (None, app):
                            module = f"templatetags.{library}"
                            found.append(Dependency(source, app, target, "module", module))
        return found

    def graph(self) -> dict[str, dict[str, list[Dependency]]]:
        graph: dict[str, dict[str, list[Dependency]]] = defaultdict(lambda: defaultdict(list))
        for dependency in self.dependencies():
            graph[dependency.app][dependency.target].append(dependency)
        return graph


def outside_faces(tree: Tree) -> list[str]:
    """Every dependency on something the other app does not publish."""
    faces = {app: tree.face(app) for app in tree.apps}
    offenders = []
    for dependency in tree.dependencies():
        face = faces[dependency.target]
        if dependency.kind == "module":
            if dependency.name not in face["PUBLIC"]:
                offenders.append(f"{dependency}: not in its PUBLIC")
            elif dependency.name.rpartition(".")[2] in FUNCTION_MODULES:
                module = f"{tree.root.name}.{dependency.target}.{dependency.name}"
                for name in dependency.names:
                    kind = tree.kind_of(module, name)
                    if kind in ("class", "value"):
                        offenders.append(f"{dependency}: {name} is a {kind}, not a function")
        else:
            published = face[PUBLISHED_FILES[dependency.kind]]
            if not any(fnmatch.fnmatchcase(dependency.name, pattern) for pattern in published):
                offenders.append(f"{dependency}: not published")
    return offenders


def cycles(tree: Tree) -> list[str]:
    graph = tree.graph()
    found = []

    def visit(app: str, trail: list[str]) -> None:
        for target in graph.get(app, {}):
            if target in trail:
                loop = trail[trail.index(target) :]
                start = loop.index(min(loop))  # each cycle once, from its first app
                cycle = [*loop[start:], *loop[:start], min(loop)]
                evidence = [str(graph[a][b][0]) for a, b in zip(cycle, cycle[1:], strict=False)]
                found.append(" -> ".join(cycle) + "\n    " + "\n    ".join(evidence))
            elif len(trail) <= len(tree.apps):
                visit(target, [*trail, target])

    for app in tree.apps:
        visit(app, [app])
    return sorted(set(found))


def project_imports(tree: Tree, project: str = "orchestra") -> list[str]:
    return [
        f"{path.relative_to(tree.root)} -> {module}"
        for path in tree.python_files()
        for module, _names in tree.imports(path)
        if module == project or module.startswith(f"{project}.")
    ]


def import_time_registrations(tree: Tree) -> list[str]:
    """``register_*(...)`` run when a module is imported: registrations belong in ``ready()``
    (``apps.py``), so importing a module has no effect on the registries."""
    return [
        f"{path.relative_to(tree.root)}:{node.lineno} {ast.unparse(node.value.func)}(...)"
        for path in tree.python_files()
        if path.name != "apps.py"
        for node in tree.parse(path).body
        if isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Name)
        and node.value.func.id.startswith("register_")
    ]


def face_problems(tree: Tree) -> list[str]:
    """Apps without a declared face, or publishing their pages."""
    problems = []
    for app in tree.apps:
        face = tree.face(app)
        if "undeclared" in face:
            problems.append(f"{app}: its apps.py declares no PUBLIC")
        problems.extend(
            f"{app}: publishes {module}; pages belong to their app"
            for module in face["PUBLIC"]
            if module.rpartition(".")[2] == "pages"
        )
    return problems


# --- the project's apps ---------------------------------------------------------------------


def test_every_app_declares_its_public_face_and_no_page_is_public():
    assert face_problems(Tree(APPS_DIR)) == []


def test_apps_use_each_other_only_through_their_public_faces():
    assert outside_faces(Tree(APPS_DIR)) == []


def test_no_cycle_between_apps():
    assert cycles(Tree(APPS_DIR)) == []


def test_no_app_imports_the_project():
    assert project_imports(Tree(APPS_DIR)) == []


def test_apps_register_in_ready_not_when_a_module_is_imported():
    assert import_time_registrations(Tree(APPS_DIR)) == []


def test_the_core_app_depends_on_no_other_app():
    assert dict(Tree(APPS_DIR).graph().get("core", {})) == {}


def test_no_app_imports_realtime_it_publishes_through_the_core_bus():
    graph = Tree(APPS_DIR).graph()
    assert [str(d) for app in graph for d in graph[app].get("realtime", [])] == []


def test_the_walk_finds_real_imports():
    """Guards the tests above against passing because the walk sees nothing."""
    tree = Tree(APPS_DIR)
    graph = tree.graph()
    assert "providers" in graph["gateway"] and "accounts" in graph["gateway"]
    assert "core" in graph["providers"]
    assert {d.kind for app in graph for deps in graph[app].values() for d in deps} == {
        "module",
        "template",
        "static",
    }
    assert tree.face("providers")["PUBLIC"] >= {"llm", "models"}


# --- the checker itself, on a tree of its own -------------------------------------------------


def _write(root: Path, files: dict[str, str]) -> Tree:
    for name, text in files.items():
        path = root / "apps" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return Tree(root / "apps")


def test_the_checker_catches_each_kind_of_violation(tmp_path):
    tree = _write(
        tmp_path,
        {
            "low/__init__.py": "",
            "low/apps.py": 'PUBLIC = frozenset({"models", "services", "pages"})\n'
            'PUBLIC_TEMPLATES = {"low/includes/*.html"}\n',
            "low/models.py": "class Thing: pass\n",
            "low/services.py": "LIMIT = 3\n\ndef thing_make(): pass\n",
            "low/internals.py": "from apps.high.models import Other\n",
            "low/pages.py": "",
            "low/templates/low/includes/shared.html": "",
            "low/templates/low/private.html": "",
            "low/static/low/low.css": "",
            "high/__init__.py": "",
            "high/apps.py": "from django.apps import AppConfig\n",
            "high/models.py": "from apps.low.models import Thing\nfrom apps.low import services\n"
            "class Other: pass\n",
            "high/views.py": "import orchestra.celery\nregister_thing(1)\n\ndef view():\n"
            "    from apps.low.internals import x\n"
            "    from ..low.services import LIMIT, thing_make\n",
            "high/templates/high/page.html": '{% extends "low/private.html" %}{% load static %}'
            '{% include "low/includes/shared.html" %}'
            "<link href=\"{% static 'low/low.css' %}\">",
        },
    )
    assert face_problems(tree) == [
        "high: its apps.py declares no PUBLIC",
        "low: publishes pages; pages belong to their app",
    ]
    assert outside_faces(tree) == [
        "high/views.py -> low: module internals (x): not in its PUBLIC",
        "high/views.py -> low: module services (LIMIT, thing_make): LIMIT is a value, "
        "not a function",
        "low/internals.py -> high: module models (Other): not in its PUBLIC",
        "high/templates/high/page.html -> low: template low/private.html: not published",
        "high/templates/high/page.html -> low: static low/low.css: not published",
    ]
    assert [cycle.partition("\n")[0] for cycle in cycles(tree)] == ["high -> low -> high"]
    assert project_imports(tree) == ["high/views.py -> orchestra.celery"]
    assert import_time_registrations(tree) == ["high/views.py:2 register_thing(...)"]
