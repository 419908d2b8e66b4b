"""What a step's Markdown output is split into: the report, code files and patches."""

from __future__ import annotations

import pytest

from apps.artifacts.extraction import (
    ExtractedArtifact,
    artifacts_extract,
    content_type_for,
    fenced_blocks,
    hint_parse,
    info_parse,
    name_sanitize,
    name_unique,
)

IMPLEMENTATION = """\
# Implementation

I'll add the model, the view and the URL. Here are the files.

### 1. `todo/models.py`

```python
from django.db import models


class Todo(models.Model):
    title = models.CharField(max_length=200)
    done = models.BooleanField(default=False)
```

File: todo/views.py
```python
from django.http import JsonResponse

from .models import Todo


def todo_list(request):
    return JsonResponse({"todos": list(Todo.objects.values())})
```

**`todo/urls.py`**

```py
from django.urls import path

from . import views

urlpatterns = [path("", views.todo_list)]
```

`templates/todo/list.html`:
```html
<ul>{% for todo in todos %}<li>{{ todo.title }}</li>{% endfor %}</ul>
```

```typescript
// frontend/src/api.ts
export async function todos(): Promise<unknown> {
  return (await fetch("/todos/")).json();
}
```

```yaml title="docker-compose.yml"
services:
  web:
    build: .
```

```Dockerfile
FROM python:3.11-slim
```

Then run the migrations:

```bash
python manage.py makemigrations todo
python manage.py migrate
```

```requirements.txt
django==5.2
```
"""


def by_name(artifacts: list[ExtractedArtifact]) -> dict[str, ExtractedArtifact]:
    return {artifact.name: artifact for artifact in artifacts}


def test_a_realistic_output_gives_a_report_and_every_file_named_by_its_hint():
    artifacts = artifacts_extract(IMPLEMENTATION, report_name="2-implement.md")
    report = artifacts[0]
    assert (report.name, report.kind, report.language) == ("2-implement.md", "report", "markdown")
    assert report.content == IMPLEMENTATION and report.content_type == "text/markdown"

    assert [a.name for a in artifacts[1:]] == [
        "todo/models.py",  # a heading with a code span
        "todo/views.py",  # "File: ..."
        "todo/urls.py",  # **`...`**
        "templates/todo/list.html",  # `...`:
        "frontend/src/api.ts",  # a comment on the block's first line
        "docker-compose.yml",  # title="..."
        "snippet-1.dockerfile",
        "snippet-2.sh",
        "requirements.txt",  # the info string is the name
    ]
    files = by_name(artifacts)
    assert files["todo/models.py"].content.startswith("from django.db import models\n")
    assert files["todo/models.py"].content.endswith("default=False)\n")
    assert "```" not in files["todo/views.py"].content
    assert files["todo/urls.py"].language == "python"
    assert files["templates/todo/list.html"].content_type == "text/html"
    assert files["frontend/src/api.ts"].language == "typescript"
    assert files["frontend/src/api.ts"].content.startswith("// frontend/src/api.ts\n")
    assert files["docker-compose.yml"].language == "yaml"
    assert files["snippet-2.sh"].language == "bash"
    assert files["snippet-2.sh"].content_type == "text/x-shellscript"
    assert files["requirements.txt"].language == "text"
    assert all(a.kind == "code" and not a.note for a in artifacts[1:])


@pytest.mark.parametrize(
    ("info", "language", "name"),
    [
        ("python", "python", ""),
        ("python app/models.py", "python", "app/models.py"),
        ('python title="app/models.py"', "python", "app/models.py"),
        ("python filename='app/models.py'", "python", "app/models.py"),
        ("ts path=src/index.ts", "typescript", "src/index.ts"),
        ("app/models.py", "", "app/models.py"),
        ("python:app/models.py", "python", "app/models.py"),
        ("{.python}", "python", ""),
        ("JS", "javascript", ""),
        ("c++", "cpp", ""),
        ("json", "json", ""),
        ("", "", ""),
        ("python  some words here", "python", ""),
    ],
)
def test_info_strings(info, language, name):
    assert info_parse(info) == (language, name)


@pytest.mark.parametrize(
    ("line", "name"),
    [
        ("File: app/models.py", "app/models.py"),
        ("**File:** `app/models.py`", "app/models.py"),
        ("Filename: app/models.py", "app/models.py"),
        ("path: `src/lib.rs`", "src/lib.rs"),
        ("**`app/models.py`**", "app/models.py"),
        ("`app/models.py`:", "app/models.py"),
        ("**app/models.py**", "app/models.py"),
        ("### app/models.py", "app/models.py"),
        ("#### 2. `app/views.py`", "app/views.py"),
        ("- `Makefile`:", "Makefile"),
        ("Create `app/forms.py`:", "app/forms.py"),
        ("Here is the updated `settings.py` file:", "settings.py"),
        ("Here is the code:", ""),
        ("Run `pip install django` and then:", ""),
        ("Compare `a.py` with `b.py`:", ""),  # two names: neither
        ("See https://example.com/x.py", ""),
        ("This works, e.g. like so:", ""),
        ("Version 3.11 is required:", ""),
        ("", ""),
    ],
)
def test_hint_lines(line, name):
    assert hint_parse(line) == name


def test_hint_must_be_just_before_the_block():
    text = "File: far/away.py\n\n\nSome prose.\n\n```python\nx = 1\n```\n"
    assert artifacts_extract(text)[1].name == "snippet-1.py"
    spaced = "File: near.py\n\n```python\nx = 1\n```\n"
    assert artifacts_extract(spaced)[1].name == "near.py"
    too_far = "File: far.py\n\n\n```python\nx = 1\n```\n"
    assert artifacts_extract(too_far)[1].name == "snippet-1.py"


@pytest.mark.parametrize(
    ("first_line", "name"),
    [
        ("# app/models.py", "app/models.py"),
        ("// src/main.go", "src/main.go"),
        ("-- migrations/001_init.sql", "migrations/001_init.sql"),
        ("<!-- templates/base.html -->", "templates/base.html"),
        ("/* static/site.css */", "static/site.css"),
        ("# File: app/tasks.py", "app/tasks.py"),
        ("# A comment about the code", ""),
        ("#!/usr/bin/env python3.py", ""),
        ("import os", ""),
    ],
)
def test_a_comment_on_the_first_line_names_the_block(first_line, name):
    text = f"```\n{first_line}\nbody\n```\n"
    (_, block) = artifacts_extract(text)
    assert block.name == (name or "snippet-1.txt")


def test_the_info_string_wins_over_the_hint_and_the_hint_over_the_comment():
    text = (
        "File: from_hint.py\n```python from_info.py\n# from_comment.py\n```\n\n"
        "File: from_hint.py\n```python\n# from_comment.py\n```\n"
    )
    assert [a.name for a in artifacts_extract(text)[1:]] == ["from_info.py", "from_hint.py"]


VALID_DIFF = """\
--- a/todo/models.py
+++ b/todo/models.py
@@ -1,5 +1,6 @@
 from django.db import models


 class Todo(models.Model):
     title = models.CharField(max_length=200)
+    due = models.DateField(null=True)
"""

BROKEN_DIFF = """\
--- a/todo/views.py
+++ b/todo/views.py
@@ -10,7 +10,9 @@
 def todo_list(request):
-    return JsonResponse({})
+    return JsonResponse({"todos": []})
"""


def test_a_diff_that_parses_is_a_patch_and_one_that_does_not_is_code_with_the_reason():
    text = (
        "Apply this change:\n\n"
        f"```diff\n{VALID_DIFF}```\n\n"
        f"And this one (hand-written, the counts are wrong):\n\n```patch\n{BROKEN_DIFF}```\n\n"
        f"Without a language:\n\n```\n{VALID_DIFF}```\n"
    )
    (_, patch, broken, unlabelled) = artifacts_extract(text)
    assert (patch.name, patch.kind, patch.language) == ("change-1.patch", "patch", "diff")
    assert patch.content == VALID_DIFF and patch.content_type == "text/x-diff" and not patch.note
    assert (broken.kind, broken.language, broken.name) == ("code", "diff", "snippet-1.diff")
    assert broken.content == BROKEN_DIFF
    assert "Not a valid unified diff" in broken.note and "shorter" in broken.note
    assert (unlabelled.kind, unlabelled.name) == ("patch", "change-2.patch")


def test_a_named_patch_keeps_a_patch_extension():
    text = f"File: todo/models.py\n```diff\n{VALID_DIFF}```\n\n```diff fix.patch\n{VALID_DIFF}```\n"
    assert [a.name for a in artifacts_extract(text)[1:]] == ["todo/models.py.patch", "fix.patch"]


def test_a_diff_block_without_hunks_is_not_a_patch():
    text = "```diff\n--- a/x.py\n+++ b/x.py\nnothing here\n```\n"
    (_, block) = artifacts_extract(text)
    assert block.kind == "code" and block.language == "diff" and "no hunks" in block.note
    prose = "```diff\nThis is not a diff at all.\n```\n"
    (_, block) = artifacts_extract(prose)
    assert block.kind == "code" and "no file headers" in block.note


def test_a_git_rename_without_hunks_is_a_patch():
    text = (
        "```diff\ndiff --git a/old.py b/new.py\nsimilarity index 100%\n"
        "rename from old.py\nrename to new.py\n```\n"
    )
    assert artifacts_extract(text)[1].kind == "patch"


def test_fences_of_any_length_and_tildes_nest_as_commonmark_says():
    text = (
        "````markdown README.md\n# Title\n\n```python\nprint(1)\n```\n````\n\n"
        "~~~python\nx = '```'\n```\nstill inside\n~~~\n\n"
        "```python\ncode\n~~~\nstill code\n```\n"
    )
    blocks = fenced_blocks(text)
    assert [b.content for b in blocks] == [
        "# Title\n\n```python\nprint(1)\n```\n",
        "x = '```'\n```\nstill inside\n",
        "code\n~~~\nstill code\n",
    ]
    assert artifacts_extract(text)[1].name == "README.md"


def test_blocks_indented_in_a_list_lose_their_indent():
    text = "1. Install:\n\n   ```bash\n   pip install django\n     --upgrade\n   ```\n"
    (block,) = fenced_blocks(text)
    assert block.content == "pip install django\n  --upgrade\n"


def test_an_unclosed_block_runs_to_the_end_and_says_so():
    text = "Here:\n\n```python\ndef f():\n    return 1\n"
    (_, block) = artifacts_extract(text)
    assert block.content == "def f():\n    return 1\n"
    assert "not closed" in block.note


def test_backticks_in_a_backtick_info_string_are_not_a_fence():
    text = "```not `a` fence\nx\n```\n"
    assert len(fenced_blocks(text)) == 1  # the last line opens an (empty, unclosed) block
    assert fenced_blocks(text)[0].info == ""


def test_an_output_without_blocks_is_only_the_report_even_if_empty():
    assert [a.kind for a in artifacts_extract("Just prose.\n")] == ["report"]
    (report,) = artifacts_extract("")
    assert report.content == "" and report.name == "report.md"


def test_duplicate_names_get_a_suffix_before_the_extension():
    text = "".join(f"File: app/models.py\n```python\nv = {i}\n```\n\n" for i in range(3))
    text += "File: APP/Models.py\n```python\nv = 3\n```\n\n"
    text += "File: 1-plan.md\n```markdown\n# not the report\n```\n"
    names = [a.name for a in artifacts_extract(text, report_name="1-plan.md")]
    assert names == [
        "1-plan.md",
        "app/models.py",
        "app/models-2.py",
        "app/models-3.py",
        "APP/Models-4.py",  # the same file on a case-insensitive disk
        "1-plan-2.md",
    ]


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("app/models.py", "app/models.py"),
        ("../../etc/passwd", "etc/passwd"),
        ("/etc/passwd", "etc/passwd"),
        ("..\\..\\windows\\system32\\cmd.exe", "windows/system32/cmd.exe"),
        ("C:\\Users\\me\\x.py", "Users/me/x.py"),
        ("a/./b/../c.py", "a/b/c.py"),
        ("weird name with spaces.py", "weird_name_with_spaces.py"),
        ("x\x00y\n.py", "xy.py"),
        ("<script>alert(1)</script>.js", "script_alert_1/script_.js"),
        ("....", ""),
        ("", ""),
        ("~/.ssh/authorized_keys", ".ssh/authorized_keys"),
        (".env", ".env"),
        ("src/\u202eevil.py", "src/evil.py"),
    ],
)
def test_names_are_made_safe_relative_paths(raw, safe):
    assert name_sanitize(raw) == safe


def test_long_names_are_cut_keeping_the_extension():
    long = "/".join(["directory" * 5] * 8) + "/" + "f" * 300 + ".py"
    safe = name_sanitize(long)
    assert len(safe) <= 200 and safe.endswith(".py")
    assert all(len(segment) <= 100 for segment in safe.split("/"))
    assert name_unique(safe, {safe.casefold()}).endswith("-2.py")
    assert len(name_unique(safe, {safe.casefold()})) <= 200


def test_hostile_names_in_an_output_never_escape_the_artifact_folder():
    text = (
        "```python ../../../../etc/cron.d/evil.py\nx\n```\n\n"
        "File: /root/.bashrc.sh\n```bash\ny\n```\n\n"
        "```python\n# ..\\..\\boot.py\nz\n```\n\n"
        '```python title="../../../../"\nw\n```\n'
    )
    names = [a.name for a in artifacts_extract(text)[1:]]
    assert names == ["etc/cron.d/evil.py", "root/.bashrc.sh", "boot.py", "snippet-1.py"]
    for name in names:
        assert not name.startswith("/") and ".." not in name.split("/") and "\\" not in name


def test_content_types_follow_the_language():
    assert content_type_for("markdown") == "text/markdown"
    assert content_type_for("py") == "text/x-python"
    assert content_type_for("patch") == "text/x-diff"
    assert content_type_for("json") == "application/json"
    assert content_type_for("brainfuck") == "text/plain"
