"""apply_edits: one search/replace at a time, editable files only, and the result must compile."""

from __future__ import annotations

import textwrap

import pytest

from autoresearch.edits import apply_edits
from autoresearch.models import FileEdit

TRAIN = textwrap.dedent(
    """\
    import math

    DEPTH = 8               # number of transformer layers
    MATRIX_LR = 0.04        # learning rate for matrix parameters (Muon)
    WARMUP_RATIO = 0.0      # fraction of time budget for LR warmup


    def schedule(progress):
        if progress < WARMUP_RATIO:
            return progress / WARMUP_RATIO
        return 1.0
    """
)
MODEL = "class Model:\n    width = 512\n"
FILES = {"train.py": TRAIN, "model.py": MODEL}


def edit(search: str, replace: str, path: str = "train.py") -> FileEdit:
    return FileEdit(path=path, search=search, replace=replace)


def test_applies_one_search_replace():
    result = apply_edits(FILES, [edit("MATRIX_LR = 0.04", "MATRIX_LR = 0.06")])
    assert result.refused is None
    assert result.files == {"train.py": TRAIN.replace("MATRIX_LR = 0.04", "MATRIX_LR = 0.06")}


def test_applies_several_edits_in_order_across_editable_files():
    result = apply_edits(
        FILES,
        [
            edit("DEPTH = 8", "DEPTH = 10"),
            edit("DEPTH = 10 ", "DEPTH = 12 "),  # sees the first edit's result
            edit("width = 512", "width = 768", path="model.py"),
        ],
    )
    assert result.refused is None
    assert result.files["train.py"] == TRAIN.replace("DEPTH = 8 ", "DEPTH = 12 ")
    assert result.files["model.py"] == "class Model:\n    width = 768\n"


def test_only_changed_files_are_returned():
    result = apply_edits(FILES, [edit("width = 512", "width = 640", path="model.py")])
    assert set(result.files) == {"model.py"}


def test_originals_are_not_modified():
    originals = dict(FILES)
    apply_edits(originals, [edit("DEPTH = 8", "DEPTH = 9")])
    assert originals == FILES


def test_replaces_exactly_once_and_keeps_everything_else():
    result = apply_edits(FILES, [edit("    return 1.0\n", "    return min(1.0, 2 * progress)\n")])
    assert result.refused is None
    new = result.files["train.py"]
    assert new.count("return min(1.0, 2 * progress)") == 1
    assert new.replace("    return min(1.0, 2 * progress)\n", "    return 1.0\n") == TRAIN


@pytest.mark.parametrize("path", ["prepare.py", "../train.py", "/etc/passwd", "Train.py", "sub/train.py"])
def test_refuses_a_path_outside_the_editable_files(path: str):
    result = apply_edits(FILES, [edit("MAX_SEQ_LEN = 2048", "MAX_SEQ_LEN = 4096", path=path)])
    assert result.refused is not None
    assert path in result.refused
    assert path not in result.files
    assert result.files == {}


def test_refusal_of_a_foreign_path_does_not_apply_it_even_after_a_good_edit():
    result = apply_edits(
        FILES, [edit("DEPTH = 8", "DEPTH = 9"), edit("MAX_SEQ_LEN = 2048", "MAX_SEQ_LEN = 1", path="prepare.py")]
    )
    assert result.refused is not None and "prepare.py" in result.refused
    assert "prepare.py" not in result.files
    assert set(result.files) <= set(FILES)


def test_refuses_search_text_that_is_not_found():
    result = apply_edits(FILES, [edit("MATRIX_LR = 0.05", "MATRIX_LR = 0.06")])
    assert result.refused is not None and "not found" in result.refused and "train.py" in result.refused
    assert result.files == {}


def test_refuses_search_text_found_more_than_once():
    result = apply_edits(FILES, [edit("WARMUP_RATIO", "WARMUP")])
    assert result.refused is not None and "3" in result.refused and "train.py" in result.refused
    assert result.files == {}


def test_refuses_an_empty_search_text():
    result = apply_edits(FILES, [edit("", "X = 1\n")])
    assert result.refused is not None
    assert result.files == {}


def test_refuses_a_result_that_does_not_compile_and_returns_it():
    broken_search = "        return progress / WARMUP_RATIO\n"
    broken_replace = "        return progress / (WARMUP_RATIO\n"
    result = apply_edits(FILES, [edit(broken_search, broken_replace)])
    assert result.refused is not None
    assert "train.py" in result.refused and "compile" in result.refused
    broken = TRAIN.replace(broken_search, broken_replace)
    assert result.files == {"train.py": broken}  # committed for the record, never trained
    # the message has the line number of the error (the unclosed paren is on line 10)
    line = broken.splitlines().index("        return progress / (WARMUP_RATIO") + 1
    assert f"line {line}" in result.refused


def test_indentation_error_is_refused_with_its_line():
    result = apply_edits(FILES, [edit("    return 1.0\n", "  return 1.0\n")])
    assert result.refused is not None
    assert "line 11" in result.refused
    assert "  return 1.0" in result.files["train.py"]


def test_non_python_files_are_not_compiled():
    files = {"train.py": TRAIN, "config.yaml": "lr: 0.04\n"}
    result = apply_edits(files, [edit("lr: 0.04", "lr: [0.06", path="config.yaml")])
    assert result.refused is None
    assert result.files == {"config.yaml": "lr: [0.06\n"}


def test_refuses_an_edit_that_changes_nothing():
    result = apply_edits(FILES, [edit("DEPTH = 8", "DEPTH = 8")])
    assert result.refused is not None and "nothing" in result.refused
    assert result.files == {}


def test_refuses_edits_that_cancel_out():
    result = apply_edits(FILES, [edit("DEPTH = 8", "DEPTH = 9"), edit("DEPTH = 9", "DEPTH = 8")])
    assert result.refused is not None
    assert result.files == {}


def test_refuses_no_edits_at_all():
    result = apply_edits(FILES, [])
    assert result.refused is not None
    assert result.files == {}
