"""Unified diffs applied to files in memory, strictly: every patch of a build is applied before
anything is written, so one that does not apply publishes nothing.

unidiff parses; applying is here. A hunk's context and removed lines must match the file exactly
(no fuzz); only its position may move (the nearest match to the line the hunk names, after the
hunk before it), as ``patch`` allows, since a model's line numbers are often off. New files
(``--- /dev/null``), deletions (``+++ /dev/null``) and several patches of one file (applied in
order) are understood; renames and binary patches are refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from unidiff import PatchedFile, PatchSet
from unidiff.errors import UnidiffParseError


class PatchError(Exception):
    """A patch that does not apply, saying which one, which file and where."""


def _path(name: str) -> str:
    for prefix in ("a/", "b/"):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _find(lines: list[str], wanted: list[str], near: int, start: int) -> int | None:
    """Where ``wanted`` occurs in ``lines`` at or after ``start``, nearest to ``near``."""
    last = len(lines) - len(wanted)
    candidates = sorted(range(start, last + 1), key=lambda at: (abs(at - near), at))
    for at in candidates:
        if lines[at : at + len(wanted)] == wanted:
            return at
    return None


def _same(line: str) -> str:
    """A line compared without its line end (a patch may lack the file's last newline)."""
    return line.rstrip("\r\n")


def _apply_file(patched: PatchedFile, text: str, where: str) -> str:
    lines = _lines(text)
    start = 0
    for number, hunk in enumerate(patched, start=1):
        source = [line.value for line in hunk if line.is_context or line.is_removed]
        target = [line.value for line in hunk if line.is_context or line.is_added]
        plain = [_same(line) for line in lines]
        near = max(0, hunk.source_start - 1)
        at = (
            _find(plain, [_same(line) for line in source], near, start)
            if source
            else min(near, len(lines))
        )
        if at is None:
            raise PatchError(
                f"{where}: hunk {number} (@@ -{hunk.source_start},{hunk.source_length} @@) does "
                "not match the file: its context and removed lines are not there"
            )
        if at + len(source) == len(lines) and lines and not lines[-1].endswith("\n"):
            target = [*target[:-1], target[-1].rstrip("\n")] if target else target
        if at > 0 and not lines[at - 1].endswith("\n"):
            lines[at - 1] += "\n"
        lines[at : at + len(source)] = target
        start = at + len(target)
    return "".join(lines)


def patches_apply(
    patches: Iterable[tuple[str, str]], read: Callable[[str], str | None]
) -> dict[str, str | None]:
    """Apply each ``(name, unified diff)`` in order to the files ``read(path)`` gives (None: no
    such file) and return every changed path's new text (None: deleted). Nothing is written;
    any patch that does not apply raises ``PatchError``."""
    changed: dict[str, str | None] = {}

    def current(path: str) -> str | None:
        return changed[path] if path in changed else read(path)

    for name, diff in patches:
        try:
            parsed = PatchSet(diff)
        except UnidiffParseError as error:
            raise PatchError(f"{name}: not a unified diff ({error})") from None
        if not len(parsed):
            raise PatchError(f"{name}: not a unified diff (no file in it)")
        for patched in parsed:
            if patched.is_rename or patched.is_binary_file:
                raise PatchError(f"{name}: renames and binary files are not applied")
            if patched.is_added_file:
                path = _path(patched.target_file)
                if current(path) is not None:
                    raise PatchError(f"{name}: {path} is created but already exists")
                changed[path] = _apply_file(patched, "", f"{name}: {path}")
                continue
            path = _path(patched.source_file)
            text = current(path)
            if text is None:
                raise PatchError(f"{name}: {path} does not exist")
            if patched.is_removed_file:
                changed[path] = None
                continue
            changed[path] = _apply_file(patched, text, f"{name}: {path}")
    return changed
