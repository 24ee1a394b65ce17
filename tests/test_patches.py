"""Applying changes: SEARCH/REPLACE diffs, whole programs, EVOLVE-BLOCK boundaries."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evomcp.tools import markers, patches
from evomcp.tools.errors import EvoError

PROGRAM = '''import math

# EVOLVE-BLOCK-START
def f(x):
    if x > 0:
        return x * 2
    return 0
# EVOLVE-BLOCK-END

def main():
    return f(3)
'''


def block(search, replace):
    return f"<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE"


def test_exact_diff_applies():
    out = patches.apply_diff(PROGRAM, block("        return x * 2\n", "        return x * 3\n"))
    assert "return x * 3" in out.code and out.notes == []
    assert markers.split(out.code).fixed == markers.split(PROGRAM).fixed


def test_several_blocks_apply_in_order():
    patch = block("        return x * 2\n", "        return x * 5\n") + "\n" + block(
        "        return x * 5\n", "        return x * 7\n")
    assert "x * 7" in patches.apply_diff(PROGRAM, patch).code


def test_indentation_tolerant_match_keeps_file_indentation():
    patch = block("if x > 0:\n    return x * 2\n", "if x > 1:\n    return x * 4\n")
    out = patches.apply_diff(PROGRAM, patch)
    assert "    if x > 1:\n        return x * 4\n" in out.code
    assert any("indentation" in n for n in out.notes)


def test_change_outside_block_is_refused():
    with pytest.raises(EvoError, match="outside the EVOLVE-BLOCK"):
        patches.apply_diff(PROGRAM, block("    return f(3)\n", "    return 99\n"))
    with pytest.raises(EvoError, match="outside the EVOLVE-BLOCK"):
        patches.apply_diff(PROGRAM, block("import math\n", "import os\n"))


def test_no_match_reports_closest_region():
    with pytest.raises(EvoError) as info:
        patches.apply_diff(PROGRAM, block("        return x * 9\n", "        return 1\n"))
    message = str(info.value)
    assert "does not match" in message and "line 6" in message and "x * 9" in message


def test_patch_without_blocks_explains_format():
    with pytest.raises(EvoError, match="<<<<<<< SEARCH"):
        patches.apply_diff(PROGRAM, "please make it faster")


def test_full_program_keeps_fixed_code_from_parent():
    proposed = PROGRAM.replace("x * 2", "x ** 2").replace("return f(3)", "return f(4)")
    out = patches.apply_full(PROGRAM, proposed)
    assert "x ** 2" in out.code and "return f(3)" in out.code
    assert out.notes


def test_full_program_without_markers_is_refused():
    with pytest.raises(EvoError, match="no EVOLVE-BLOCK"):
        patches.apply_full(PROGRAM, "def f(x):\n    return 1\n")


@pytest.mark.parametrize("code,needle", [
    ("x = 1\n", "no EVOLVE-BLOCK"),
    ("# EVOLVE-BLOCK-START\nx = 1\n", "never closed"),
    ("x = 1\n# EVOLVE-BLOCK-END\n", "never opened"),
    ("# EVOLVE-BLOCK-START\n# EVOLVE-BLOCK-START\n# EVOLVE-BLOCK-END\n", "inside another"),
])
def test_broken_markers(code, needle):
    with pytest.raises(EvoError, match=needle):
        markers.split(code)


lines = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"), max_size=30).map(lambda s: s.replace("\n", " ") + "\n")


@settings(max_examples=200, deadline=None)
@given(st.lists(lines, max_size=5), st.lists(lines, min_size=1, max_size=5), st.lists(lines, max_size=5),
       st.data())
def test_any_diff_keeps_fixed_code(before, body, after, data):
    program = "".join(before) + "# EVOLVE-BLOCK-START\n" + "".join(body) + "# EVOLVE-BLOCK-END\n" + "".join(after)
    if any("EVOLVE-BLOCK" in l or "<<<<<<<" in l or "=======" in l or ">>>>>>>" in l for l in before + body + after):
        return
    start = data.draw(st.integers(0, len(body) - 1))
    stop = data.draw(st.integers(start + 1, len(body)))
    search = "".join(body[start:stop])
    replacement = data.draw(st.lists(lines, max_size=3))
    if not search.strip():
        return
    try:
        out = patches.apply_diff(program, block(search, "".join(replacement)))
    except EvoError:
        return  # refusing is fine; silently changing fixed code is not
    assert markers.split(out.code).fixed == markers.split(program).fixed


@pytest.mark.parametrize("inserted", ["# EVOLVE-BLOCK-END\ny = 2\n", "# EVOLVE-BLOCK-START\n",
                                      "# EVOLVE-BLOCK-END\nz = 3\n# EVOLVE-BLOCK-START\n"])
def test_a_replacement_that_writes_marker_lines_is_refused(inserted):
    """A REPLACE holding marker lines would move code between the fixed and mutable parts: refused."""
    body = "# EVOLVE-BLOCK-START\nx = 1\n# EVOLVE-BLOCK-END\nprint(x)\n"
    with pytest.raises(EvoError, match="marker lines"):
        patches.apply_diff(body, block("x = 1\n", "x = 1\n" + inserted))
