"""Builds and steps made with the models directly (the builds services are not this app's), and
a media root of the test's own."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from apps.agents.models import Agent
from apps.builds.models import Build, BuildStep

_sequence = itertools.count(1)


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path: Path) -> Path:
    root = tmp_path / "media"
    settings.MEDIA_ROOT = str(root)
    return root


def stored_files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


def build_make(title: str = "a build") -> Build:
    return Build.objects.create(title=title, input="make a todo app")


def step_make(
    build: Build, *, position: int = 1, name: str = "plan", agent: Agent | None = None
) -> BuildStep:
    return BuildStep.objects.create(
        build=build,
        position=position,
        name=name,
        prompt_template="{input}",
        status="succeeded",
        agent=agent,
    )


def agent_make(name: str | None = None) -> Agent:
    return Agent.objects.create(name=name or f"agent-{next(_sequence)}", role="coder")
