"""The apps' import graph: no cycle between two apps, and the plug-in points respected."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

APPS_DIR = Path(__file__).resolve().parents[2] / "apps"
# What other apps may import of the LLM core's app: its public face and its Django surface.
PROVIDERS_PUBLIC = {"llm", "models", "selectors", "services"}


def _module_of(path: Path) -> str:
    parts = path.relative_to(APPS_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, top-level or inside functions, made absolute."""
    module = _module_of(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            found.add(prefix)
            found.update(f"{prefix}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("apps.")}


def _app_imports() -> dict[str, dict[str, set[str]]]:
    """app -> imported app -> the importing files and imported modules (for messages)."""
    graph: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for path in APPS_DIR.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        app = path.relative_to(APPS_DIR).parts[0]
        for name in _imports(path):
            target = name.split(".")[1]
            if target != app:
                graph[app][target].add(f"{path.relative_to(APPS_DIR)} -> {name}")
    return graph


def test_no_import_cycle_between_apps():
    graph = _app_imports()
    cycles = []

    def visit(app: str, trail: list[str]) -> None:
        for target in graph.get(app, {}):
            if target in trail:
                cycles.append([*trail[trail.index(target) :], target])
            elif len(trail) < len(graph) + 1:
                visit(target, [*trail, target])

    for app in list(graph):
        visit(app, [app])
    assert not cycles, "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_the_core_app_imports_no_other_app():
    assert dict(_app_imports().get("core", {})) == {}


def test_no_app_imports_realtime_it_publishes_through_the_core_bus():
    offenders = {
        app: sorted(found)
        for app, targets in _app_imports().items()
        for target, found in targets.items()
        if target == "realtime"
    }
    assert offenders == {}


def test_other_apps_reach_the_llm_core_through_its_public_face():
    offenders = []
    for targets in _app_imports().values():
        for line in targets.get("providers", ()):
            module = line.rpartition(" -> ")[2].split(".")
            if len(module) > 2 and module[2] not in PROVIDERS_PUBLIC:
                offenders.append(line)
    assert offenders == []


def test_the_walk_finds_real_imports():
    """Guards the tests above against passing because the walk sees nothing."""
    graph = _app_imports()
    assert "providers" in graph["gateway"] and "accounts" in graph["gateway"]
    assert "core" in graph["providers"]
