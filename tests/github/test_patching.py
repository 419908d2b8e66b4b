"""The strict applier: patches applied in memory, in order, or refused saying where."""

from __future__ import annotations

import pytest

from apps.github.patching import PatchError, patches_apply

FILES = {"a.py": "one\ntwo\nthree\nfour\n", "b.txt": "last line without end"}


def apply(*diffs: str) -> dict[str, str | None]:
    return patches_apply([(f"p{i}", diff) for i, diff in enumerate(diffs, 1)], FILES.get)


def test_a_change_an_addition_and_a_deletion():
    changed = apply(
        "--- a/a.py\n+++ b/a.py\n@@ -2,2 +2,3 @@\n two\n-three\n+THREE\n+three and a half\n",
        "--- /dev/null\n+++ b/new/c.py\n@@ -0,0 +1,2 @@\n+x = 1\n+y = 2\n",
        "--- a/b.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-last line without end\n",
    )
    assert changed == {
        "a.py": "one\ntwo\nTHREE\nthree and a half\nfour\n",
        "new/c.py": "x = 1\ny = 2\n",
        "b.txt": None,
    }


def test_a_hunk_whose_line_numbers_are_off_still_finds_its_context():
    changed = apply("--- a/a.py\n+++ b/a.py\n@@ -10,2 +10,2 @@\n three\n-four\n+FOUR\n")
    assert changed["a.py"] == "one\ntwo\nthree\nFOUR\n"


def test_patches_of_one_file_apply_in_order():
    changed = apply(
        "--- a/a.py\n+++ b/a.py\n@@ -1,1 +1,1 @@\n-one\n+ONE\n",
        "--- a/a.py\n+++ b/a.py\n@@ -1,2 +1,2 @@\n ONE\n-two\n+TWO\n",
    )
    assert changed["a.py"] == "ONE\nTWO\nthree\nfour\n"


def test_a_file_without_a_final_newline_keeps_it_so():
    diff = (
        "--- a/b.txt\n+++ b/b.txt\n@@ -1 +1 @@\n-last line without end\n"
        "\\ No newline at end of file\n+the last line\n\\ No newline at end of file\n"
    )
    assert apply(diff) == {"b.txt": "the last line"}


@pytest.mark.parametrize(
    ("diff", "said"),
    [
        ("--- a/a.py\n+++ b/a.py\n@@ -1,2 +1,2 @@\n one\n-TWO\n+2\n", "p1: a.py: hunk 1"),
        ("--- a/zzz.py\n+++ b/zzz.py\n@@ -1 +1 @@\n-a\n+b\n", "zzz.py does not exist"),
        ("--- /dev/null\n+++ b/a.py\n@@ -0,0 +1 @@\n+x\n", "a.py is created but already"),
        ("not a diff at all\n", "not a unified diff"),
    ],
)
def test_what_does_not_apply_is_refused_saying_where(diff, said):
    with pytest.raises(PatchError, match=said.replace(".", r"\.")):
        apply(diff)


def test_one_bad_patch_refuses_them_all():
    good = "--- a/a.py\n+++ b/a.py\n@@ -1,1 +1,1 @@\n-one\n+ONE\n"
    bad = "--- a/a.py\n+++ b/a.py\n@@ -1,1 +1,1 @@\n-one\n+uno\n"  # "one" is gone by then
    with pytest.raises(PatchError, match="p2: a.py"):
        apply(good, bad)
