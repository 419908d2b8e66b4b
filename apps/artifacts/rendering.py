"""Previews of artifacts for the dashboard: Markdown rendered and sanitised, code highlighted,
patches shown as diffs. Every function returns HTML safe to put in a page as it is.

An artifact is an LLM's output, so hostile by assumption: the Markdown's HTML goes through
``nh3`` (no scripts, event handlers, styles beyond a table cell's alignment, ``javascript:``
URLs, images that could call home, or classes that could borrow the page's own layout);
code and diffs are escaped by Pygments and by ``html.escape``.
"""

from __future__ import annotations

import html
import re
from functools import cache

import markdown  # type: ignore[import-untyped]
import nh3
from django.utils.safestring import SafeString, mark_safe
from pygments import highlight  # type: ignore[import-untyped]
from pygments.formatters import HtmlFormatter  # type: ignore[import-untyped]
from pygments.lexers import get_lexer_by_name  # type: ignore[import-untyped]
from pygments.lexers.special import TextLexer  # type: ignore[import-untyped]
from pygments.token import STANDARD_TYPES  # type: ignore[import-untyped]
from pygments.util import ClassNotFound  # type: ignore[import-untyped]

from .extraction import info_parse
from .models import Artifact, ArtifactKind

CSS_CLASS = "highlight"
LIGHT_STYLE, DARK_STYLE = "default", "monokai"
# Beyond this many characters a preview shows the start and says so (the download has it all).
PREVIEW_LIMIT = 200_000

TOKEN_CLASSES = frozenset(name for name in STANDARD_TYPES.values() if name)
ALLOWED_TAGS = (set(nh3.ALLOWED_TAGS) | {"tfoot"}) - {"img", "area", "map"}


def _allowed_attributes() -> dict[str, set[str]]:
    """nh3's defaults for the tags kept, and a table cell's alignment (``style``, only
    ``text-align``). Classes are not here: ``ALLOWED_CLASSES`` lets Pygments' own through."""
    attributes = {
        tag: set(names) for tag, names in nh3.ALLOWED_ATTRIBUTES.items() if tag in ALLOWED_TAGS
    }
    for cell in ("th", "td"):
        attributes.setdefault(cell, set()).add("style")
    return attributes


ALLOWED_ATTRIBUTES = _allowed_attributes()
ALLOWED_CLASSES = {"div": {CSS_CLASS}, "span": set(TOKEN_CLASSES)}

DIFF_CSS = """
.artifact-diff { padding: .5rem; overflow-x: auto; }
.artifact-diff .diff-add { background: #e6ffec; color: #1a7f37; display: block; }
.artifact-diff .diff-del { background: #ffebe9; color: #cf222e; display: block; }
.artifact-diff .diff-hunk { color: #8250df; display: block; }
.artifact-diff .diff-file { font-weight: bold; display: block; }
.artifact-diff .diff-context { display: block; }
.dark .artifact-diff .diff-add { background: #12261e; color: #7ee787; }
.dark .artifact-diff .diff-del { background: #25171c; color: #ffa198; }
.dark .artifact-diff .diff-hunk { color: #d2a8ff; }
.artifact-preview-note { font-style: italic; margin: .5rem 0; }
"""


def _cut(text: str) -> tuple[str, str]:
    """The text to preview and, if it was cut, a note saying so (as HTML)."""
    if len(text) <= PREVIEW_LIMIT:
        return text, ""
    note = (
        f'<p class="artifact-preview-note">Preview of the first {PREVIEW_LIMIT:,} of '
        f"{len(text):,} characters; download the artifact for all of it.</p>"
    )
    return text[:PREVIEW_LIMIT], note


def sanitize_html(fragment: str) -> str:
    return nh3.clean(
        fragment,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        allowed_classes=ALLOWED_CLASSES,
        filter_style_properties={"text-align"},
        link_rel="noopener noreferrer nofollow",
    )


def markdown_html(text: str) -> SafeString:
    """Markdown (fenced code highlighted, tables) as sanitised HTML."""
    text, note = _cut(text)
    rendered = markdown.markdown(
        _fences_with_language_only(text),
        extensions=["fenced_code", "tables", "codehilite"],
        extension_configs={"codehilite": {"css_class": CSS_CLASS, "guess_lang": False}},
        output_format="html",
    )
    return mark_safe(note + sanitize_html(rendered))


FENCE_OPENING = re.compile(
    r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^`\n]*\S[^`\n]*)$", re.MULTILINE
)


def _fences_with_language_only(text: str) -> str:
    """Python-Markdown reads a fence's info string as one language: ```` ```python app.py ````
    (which the extraction names a file by) would not be a code block at all. Keep the language."""

    def opening(match: re.Match[str]) -> str:
        language, _ = info_parse(match["info"])
        return f"{match['indent']}{match['fence']}{language}"

    return FENCE_OPENING.sub(opening, text)


def _lexer(language: str) -> object:
    try:
        return get_lexer_by_name(language or "text", stripnl=False, ensurenl=False)
    except ClassNotFound:
        return TextLexer(stripnl=False, ensurenl=False)


def code_html(text: str, language: str) -> SafeString:
    """Code highlighted by Pygments (CSS classes: see ``highlight_css``); plain text when the
    language is unknown."""
    text, note = _cut(text)
    formatter = HtmlFormatter(cssclass=CSS_CLASS, wrapcode=True)
    return mark_safe(note + highlight(text, _lexer(language), formatter))


def _diff_class(line: str) -> str:
    if line.startswith(("+++ ", "--- ", "diff ", "index ")) or line in ("+++", "---"):
        return "diff-file"
    if line.startswith("@@"):
        return "diff-hunk"
    if line.startswith("+"):
        return "diff-add"
    if line.startswith("-"):
        return "diff-del"
    return "diff-context"


def patch_html(text: str) -> SafeString:
    """A unified diff, one element per line: ``diff-add``, ``diff-del``, ``diff-hunk``,
    ``diff-file`` (headers) or ``diff-context``."""
    text, note = _cut(text)
    lines = "".join(
        f'<span class="{_diff_class(line)}">{html.escape(line) or " "}</span>'
        for line in text.splitlines()
    )
    return mark_safe(f'{note}<pre class="artifact-diff">{lines}</pre>')


def artifact_preview_html(artifact: Artifact) -> SafeString:
    """The artifact as the dashboard shows it: a report as Markdown, a patch as a diff, code
    highlighted in its language. Include ``highlight_css()`` in the page."""
    if artifact.kind == ArtifactKind.REPORT:
        return markdown_html(artifact.content)
    if artifact.kind == ArtifactKind.PATCH:
        return patch_html(artifact.content)
    return code_html(artifact.content, artifact.language)


def _scoped_style(style: str, selector: str) -> str:
    """Pygments' rules for ``style`` under ``selector`` only (not its global ``pre`` rules)."""
    rules = HtmlFormatter(style=style).get_style_defs(selector).splitlines()
    return "\n".join(rule for rule in rules if rule.startswith(selector))


@cache
def highlight_css() -> str:
    """The stylesheet of previews: Pygments' classes (light, and dark under ``.dark``) and
    the diff's."""
    return "\n".join(
        [
            _scoped_style(LIGHT_STYLE, f".{CSS_CLASS}"),
            _scoped_style(DARK_STYLE, f".dark .{CSS_CLASS}"),
            f".{CSS_CLASS} {{ padding: .5rem; overflow-x: auto; }}",
            DIFF_CSS.strip(),
        ]
    )
