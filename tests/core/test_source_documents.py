"""Code, docs and tests say what the behaviour is, never which outside document it came from:
the source documents (named "seed" and a number) are not in the repository, so naming them
explains nothing to a reader of it."""

from __future__ import annotations

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SCANNED = (
    "apps", "orchestra", "bench", "tests", "docs", "templates", "static", "nginx", ".ci",
    "README.md", "Makefile", "Dockerfile", "docker-compose.prod.yml", ".env.example",
    "pyproject.toml", "requirements.txt", "requirements-dev.txt",
)  # fmt: skip
SKIPPED_PARTS = {"__pycache__", "node_modules"}
# The word, then blanks or comment marks (a name broken over two comment lines), then a number.
SOURCE_DOCUMENT = re.compile(r"\bseeds?[\s#*>/]+\d{3}\b", re.IGNORECASE)


def source_document_names(text: str) -> list[str]:
    return [" ".join(match.split()) for match in SOURCE_DOCUMENT.findall(text)]


def _scanned_files() -> list[Path]:
    files = []
    for name in SCANNED:
        path = REPO_ROOT / name
        candidates = [path] if path.is_file() else sorted(path.rglob("*"))
        files += [
            file
            for file in candidates
            if file.is_file() and not SKIPPED_PARTS.intersection(file.parts)
        ]
    return files


def test_no_file_names_a_source_document():
    found = []
    for path in _scanned_files():
        text = path.read_bytes().decode("utf-8", errors="ignore")
        found += [f"{path.relative_to(REPO_ROOT)}: {name}" for name in source_document_names(text)]
    assert found == []


def test_the_scan_covers_the_code_and_recognises_a_name_however_written():
    scanned = {path.relative_to(REPO_ROOT).as_posix() for path in _scanned_files()}
    assert {"README.md", "docs/architecture.md", "apps/core/registry.py", ".ci/run"} <= scanned
    # "~" keeps these examples from matching in this very file; it is removed before the check.
    written = "Seed~ 004's payload; as seed~\n    002 did; # see seed~\n# 001; SEEDS~  003"
    expected = ["Seed~004", "seed~002", "seed~#~001", "SEEDS~003"]
    found = source_document_names(written.replace("~", ""))
    assert found == [name.replace("~", " ") for name in expected]
    assert source_document_names('{"seed": 42, "random_seed": 1234, "seeded": 100}') == []
