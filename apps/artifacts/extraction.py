"""What one LLM step's output (Markdown) holds: the whole text as a report, each fenced code
block as a code file, each unified diff as a patch. Pure functions: no database, no storage.

A block's file name comes, first found first, from its info string (```` ```python app.py ````,
```` ```python title="app.py" ````, ```` ```app.py ````, ```` ```python:app.py ````), from the
line just before it ("File: app.py", "**`app.py`**", "`app.py`:", "### app.py", "Create
`app.py`:") or from a comment on its first line (``# app.py``, ``// app.ts``, ``<!-- x.html -->``);
otherwise it is made up (``snippet-1.py``, ``change-1.patch``). Names are made safe relative
paths and unique within the output.
"""

from __future__ import annotations

import posixpath
import re
import unicodedata
from dataclasses import dataclass

from unidiff import PatchSet
from unidiff.errors import UnidiffParseError

REPORT = "report"
CODE = "code"
PATCH = "patch"

MAX_NAME_LENGTH = 200
MAX_SEGMENT_LENGTH = 100
MAX_LANGUAGE_LENGTH = 32

# Canonical language -> the extension of a file made up for it.
LANGUAGE_EXTENSIONS: dict[str, str] = {
    "python": "py", "javascript": "js", "typescript": "ts", "jsx": "jsx", "tsx": "tsx",
    "bash": "sh", "powershell": "ps1", "json": "json", "yaml": "yaml", "toml": "toml",
    "ini": "ini", "xml": "xml", "html": "html", "css": "css", "scss": "scss", "sql": "sql",
    "go": "go", "rust": "rs", "java": "java", "kotlin": "kt", "scala": "scala", "c": "c",
    "cpp": "cpp", "csharp": "cs", "ruby": "rb", "php": "php", "swift": "swift", "lua": "lua",
    "perl": "pl", "r": "r", "dart": "dart", "elixir": "ex", "haskell": "hs", "markdown": "md",
    "dockerfile": "dockerfile", "makefile": "mk", "graphql": "graphql", "vue": "vue",
    "terraform": "tf", "protobuf": "proto", "diff": "diff", "text": "txt", "csv": "csv",
}  # fmt: skip

LANGUAGE_ALIASES: dict[str, str] = {
    "py": "python", "python3": "python", "py3": "python", "js": "javascript", "node": "javascript",
    "mjs": "javascript", "cjs": "javascript", "ts": "typescript", "sh": "bash", "shell": "bash",
    "zsh": "bash", "console": "bash", "shell-session": "bash", "ps1": "powershell",
    "ps": "powershell", "pwsh": "powershell", "yml": "yaml", "htm": "html", "rs": "rust",
    "golang": "go", "kt": "kotlin", "c++": "cpp", "cc": "cpp", "cxx": "cpp", "hpp": "cpp",
    "h": "c", "cs": "csharp", "c#": "csharp", "rb": "ruby", "pl": "perl", "ex": "elixir",
    "exs": "elixir", "hs": "haskell", "md": "markdown", "docker": "dockerfile", "mk": "makefile",
    "make": "makefile", "gql": "graphql", "tf": "terraform", "hcl": "terraform",
    "proto": "protobuf", "patch": "diff", "udiff": "diff", "txt": "text", "plaintext": "text",
    "plain": "text", "postgresql": "sql", "psql": "sql", "mysql": "sql", "sqlite": "sql",
    "jsonc": "json", "cfg": "ini", "conf": "ini", "svg": "xml",
}  # fmt: skip

# File extension -> language, for a block named but not labelled (```app/models.py).
EXTENSION_LANGUAGES: dict[str, str] = {
    **{ext: language for language, ext in LANGUAGE_EXTENSIONS.items()},
    **{alias: language for alias, language in LANGUAGE_ALIASES.items()},
    "mk": "makefile", "patch": "diff", "txt": "text", "yml": "yaml", "markdown": "markdown",
}  # fmt: skip
BARE_FILE_LANGUAGES = {
    "dockerfile": "dockerfile", "makefile": "makefile", "gnumakefile": "makefile",
    "containerfile": "dockerfile", "procfile": "text", "gemfile": "ruby", "rakefile": "ruby",
    "jenkinsfile": "groovy", "vagrantfile": "ruby", "justfile": "text",
}  # fmt: skip

CONTENT_TYPES: dict[str, str] = {
    "markdown": "text/markdown", "python": "text/x-python", "diff": "text/x-diff",
    "javascript": "text/javascript", "typescript": "text/x-typescript", "jsx": "text/javascript",
    "tsx": "text/x-typescript", "bash": "text/x-shellscript", "powershell": "text/plain",
    "json": "application/json", "yaml": "application/yaml", "toml": "application/toml",
    "xml": "application/xml", "html": "text/html", "css": "text/css", "scss": "text/x-scss",
    "sql": "application/sql", "go": "text/x-go", "rust": "text/x-rust", "java": "text/x-java",
    "kotlin": "text/x-kotlin", "c": "text/x-c", "cpp": "text/x-c++", "csharp": "text/x-csharp",
    "ruby": "text/x-ruby", "php": "text/x-php", "swift": "text/x-swift", "lua": "text/x-lua",
    "perl": "text/x-perl", "csv": "text/csv", "text": "text/plain",
}  # fmt: skip
DEFAULT_CONTENT_TYPE = "text/plain"


@dataclass(frozen=True)
class ExtractedArtifact:
    name: str
    kind: str  # REPORT, CODE or PATCH
    language: str
    content: str
    content_type: str
    note: str = ""  # why a block is not what it claimed (a diff that does not parse)


@dataclass(frozen=True)
class FencedBlock:
    info: str
    content: str
    hint: str  # the prose line just before the block ("" if none)
    closed: bool


# --- languages and content types --------------------------------------------------------------


def language_normalize(language: str) -> str:
    """``Py`` -> ``python``; anything unsafe or unknown kept as a short lowercase token."""
    token = language.strip().lower().lstrip(".{").rstrip("}")
    token = LANGUAGE_ALIASES.get(token, token)
    return re.sub(r"[^a-z0-9+#._-]", "", token)[:MAX_LANGUAGE_LENGTH]


def language_for_name(name: str) -> str:
    base = posixpath.basename(name).lower()
    if base in BARE_FILE_LANGUAGES:
        return BARE_FILE_LANGUAGES[base]
    _, dot, extension = base.rpartition(".")
    return EXTENSION_LANGUAGES.get(extension, "") if dot else ""


def content_type_for(language: str) -> str:
    """The media type of a file in ``language`` (without charset): ``text/x-python``, ..."""
    return CONTENT_TYPES.get(language_normalize(language), DEFAULT_CONTENT_TYPE)


# --- names ------------------------------------------------------------------------------------


def _truncate_segment(segment: str, limit: int) -> str:
    if len(segment) <= limit:
        return segment
    stem, dot, extension = segment.rpartition(".")
    if dot and stem and len(extension) < limit // 2:
        return f"{stem[: limit - len(extension) - 1]}.{extension}"
    return segment[:limit]


def name_sanitize(raw: str, *, max_length: int = MAX_NAME_LENGTH) -> str:
    """A safe relative POSIX path, or "" if nothing usable is left.

    Backslashes become slashes; drive letters, leading slashes, ``.`` and ``..`` segments,
    control characters and characters outside letters, digits and ``._-+@=,`` are removed or
    replaced; segments and the whole name are kept short (the extension kept).
    """
    text = unicodedata.normalize("NFKC", raw).replace("\\", "/")
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")
    text = re.sub(r"^[A-Za-z]:", "", text.strip().strip("`'\"*"))
    segments = []
    for part in text.split("/"):
        part = re.sub(r"[^\w.+@=,-]", "_", part.strip()).strip("_")
        if not part.strip("."):  # "", ".", "..", "..."
            continue
        segments.append(_truncate_segment(part, MAX_SEGMENT_LENGTH))
    name = "/".join(segments)
    while len(name) > max_length and len(segments) > 1:
        segments.pop(0)  # keep the file name, lose the outermost directories
        name = "/".join(segments)
    return _truncate_segment(name, max_length)


def name_unique(name: str, taken: set[str], *, max_length: int = MAX_NAME_LENGTH) -> str:
    """``name``, or ``name`` with ``-2``, ``-3``... before its extension; case-insensitively
    unique among ``taken`` (which it is added to)."""
    candidate, number = name, 1
    directory, base = posixpath.split(name)
    stem, dot, extension = base.rpartition(".")
    if not dot or not stem:
        stem, extension = base, ""
    while candidate.casefold() in taken:
        number += 1
        suffix = f"-{number}" + (f".{extension}" if extension else "")
        room = max_length - len(suffix) - (len(directory) + 1 if directory else 0)
        candidate = posixpath.join(directory, stem[: max(room, 1)] + suffix)
    taken.add(candidate.casefold())
    return candidate


PATH_TOKEN = re.compile(r"^[\w.@+=,/\\-]+$")


def _looks_like_path(token: str) -> bool:
    """``app/models.py``, ``Dockerfile``, ``.env``: a file name, not a word or a version."""
    token = token.strip()
    if not token or len(token) > 255 or "://" in token or not PATH_TOKEN.match(token):
        return False
    base = posixpath.basename(token.replace("\\", "/"))
    if base.lower() in BARE_FILE_LANGUAGES:
        return True
    stem, dot, extension = base.rpartition(".")
    if not dot or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_+-]{0,11}", extension):
        return False
    if not stem:  # .env, .gitignore
        return True
    known = extension.lower() in EXTENSION_LANGUAGES or len(extension) > 1  # not "e.g"
    return known and any(ch.isalpha() for ch in stem)


# --- fenced blocks ----------------------------------------------------------------------------

OPENING_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


def _hint_candidate(lines: list[str], start: int) -> str:
    """The prose line just before a block (one blank line between allowed)."""
    index, blanks = start - 1, 0
    while index >= 0 and not lines[index].strip():
        blanks += 1
        index -= 1
    if index < 0 or blanks > 1:
        return ""
    return lines[index].strip()


def fenced_blocks(text: str) -> list[FencedBlock]:
    """Every fenced code block of ``text``, CommonMark's way: a fence of three or more
    backticks or tildes closes only with the same character, at least as long; a block left
    open runs to the end. Blocks indented in a list item count too."""
    lines = text.splitlines()
    blocks: list[FencedBlock] = []
    index = 0
    while index < len(lines):
        match = OPENING_FENCE.match(lines[index])
        if not match or (match["fence"][0] == "`" and "`" in match["info"]):
            index += 1
            continue
        indent, fence = len(match["indent"]), match["fence"]
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        body: list[str] = []
        end = index + 1
        while end < len(lines) and not closing.match(lines[end]):
            line = lines[end]
            strip = len(line) - len(line.lstrip(" \t"))
            body.append(line[min(indent, strip) :])
            end += 1
        content = "\n".join(body) + ("\n" if body else "")
        blocks.append(
            FencedBlock(
                info=match["info"].strip(),
                content=content,
                hint=_hint_candidate(lines, index),
                closed=end < len(lines),
            )
        )
        index = end + 1
    return blocks


INFO_ATTRIBUTE = re.compile(
    r"""\b(?:title|file|filename|path|name)\s*=\s*(?:"([^"]*)"|'([^']*)'|(\S+))""", re.I
)


def info_parse(info: str) -> tuple[str, str]:
    """(language, file name) named by a fence's info string; either may be ""."""
    attribute = INFO_ATTRIBUTE.search(info)
    name = ""
    if attribute:
        name = next(group for group in attribute.groups() if group is not None)
        info = (info[: attribute.start()] + info[attribute.end() :]).strip()
    words = info.replace("{", " ").replace("}", " ").split()
    language = ""
    if words:
        first = words[0]
        if ":" in first and not name:  # ```python:app/models.py
            first, _, named = first.partition(":")
            if _looks_like_path(named):
                name = named
        if (
            not name
            and _looks_like_path(first)
            and language_normalize(first) not in LANGUAGE_EXTENSIONS
        ):
            name = first  # ```app/models.py
        else:
            language = language_normalize(first)
            if not name and len(words) > 1 and _looks_like_path(words[1]):
                name = words[1]  # ```python app/models.py
    return language, name


HINT_LABEL = re.compile(r"^(?:file(?:\s*name)?|filename|path)\s*[:=-]\s*(?P<name>.+)$", re.I)
CODE_SPAN = re.compile(r"`([^`\n]+)`")


def hint_parse(line: str) -> str:
    """The file name a prose line announces: "File: app.py", "**`app.py`**", "`app.py`:",
    "### 2. app/models.py", "Create `app/models.py`:"; "" if it announces none."""
    if not line or len(line) > 300:
        return ""
    bare = re.sub(r"^(?:#{1,6}\s+|>\s*|[-*+]\s+|\d+[.)]\s+)+", "", line.strip())
    bare = bare.replace("**", "").replace("__", "").strip().rstrip(":").strip()
    bare = re.sub(r"^\d+[.)]\s+", "", bare)
    labelled = HINT_LABEL.match(bare)
    if labelled:
        candidate = labelled["name"].strip().strip("`*_ ").rstrip(":").strip()
        return candidate if _looks_like_path(candidate) else ""
    unquoted = bare.strip("`*_ ").rstrip(":").strip()
    if _looks_like_path(unquoted):
        return unquoted
    spans = [span for span in CODE_SPAN.findall(line) if _looks_like_path(span.strip())]
    if len(spans) == 1 and line.rstrip().endswith(":"):
        return spans[0].strip()
    return ""


FIRST_LINE_COMMENT = re.compile(
    r"^\s*(?:#|//|--|;|%|/\*|<!--|\(\*)\s*(?:(?:file(?:\s*name)?|path)\s*:\s*)?"
    r"(?P<name>[^\s*]+?)\s*(?:\*/|-->|\*\))?\s*$",
    re.I,
)


def first_line_name(content: str) -> str:
    """A file name given by a comment on a block's first line: ``# app/models.py``."""
    first = content.split("\n", 1)[0]
    if first.startswith("#!"):
        return ""
    match = FIRST_LINE_COMMENT.match(first)
    return match["name"] if match and _looks_like_path(match["name"]) else ""


# --- diffs ------------------------------------------------------------------------------------

DIFF_FROM = re.compile(r"^--- \S", re.M)


def looks_like_diff(content: str) -> bool:
    """A ``--- `` line followed by a ``+++ `` line, and a hunk header somewhere."""
    lines = content.splitlines()
    has_header = any(
        line.startswith("--- ") and lines[i + 1].startswith("+++ ")
        for i, line in enumerate(lines[:-1])
    )
    return has_header and any(line.startswith("@@") for line in lines)


def diff_problem(content: str) -> str:
    """Why ``content`` is not a unified diff ``unidiff`` can read; "" if it is one."""
    try:
        patch = PatchSet(content)
    except UnidiffParseError as error:
        return f"Not a valid unified diff: {error}."
    except Exception as error:  # unidiff may fail on odd input in its own ways
        return f"Not a valid unified diff: {type(error).__name__}: {error}."
    if not len(patch):
        return "Not a valid unified diff: no file headers (--- / +++)."
    empty = [f.path for f in patch if not len(f) and not f.is_rename]
    if empty:
        return f"Not a valid unified diff: no hunks for {', '.join(empty)}."
    return ""


# --- the extraction ---------------------------------------------------------------------------


def artifacts_extract(text: str, *, report_name: str = "report.md") -> list[ExtractedArtifact]:
    """The report (``text`` itself, first), then one artifact per fenced block, in order."""
    taken: set[str] = set()
    report = name_unique(name_sanitize(report_name) or "report.md", taken)
    extracted = [ExtractedArtifact(report, REPORT, "markdown", text, "text/markdown")]
    counters = {CODE: 0, PATCH: 0}
    for block in fenced_blocks(text):
        language, name = info_parse(block.info)
        name = name or hint_parse(block.hint) or first_line_name(block.content)
        note = ""
        is_diff_language = language == "diff"
        kind = CODE
        if is_diff_language or looks_like_diff(block.content):
            note = diff_problem(block.content)
            kind = CODE if note else PATCH
            language = "diff"
        if not language and name:
            language = language_for_name(name)
        safe = name_sanitize(name) if name else ""
        if kind == PATCH and safe and not safe.lower().endswith((".patch", ".diff")):
            safe = f"{safe}.patch"  # app/models.py announced: its change, not the file
        if not safe:
            counters[kind] += 1
            if kind == PATCH:
                safe = f"change-{counters[kind]}.patch"
            else:
                extension = LANGUAGE_EXTENSIONS.get(language, "txt")
                safe = f"snippet-{counters[kind]}.{extension}"
        if not block.closed:
            note = " ".join(filter(None, [note, "The block was not closed (output cut off?)."]))
        extracted.append(
            ExtractedArtifact(
                name=name_unique(safe, taken),
                kind=kind,
                language=language,
                content=block.content,
                content_type=content_type_for(language) if language else DEFAULT_CONTENT_TYPE,
                note=note,
            )
        )
    return extracted
