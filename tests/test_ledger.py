"""results.tsv: karpathy's format exactly, whole-line appends, strict parsing, torn-tail repair."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from autoresearch import ledger
from autoresearch.errors import UserError
from autoresearch.models import LedgerRow

HEADER = "commit\tval_bpb\tmemory_gb\tstatus\tdescription"


def row(
    commit: str = "a1b2c3d4e5f6", value: float = 0.9979, memory: float = 44.0, status: str = "keep", description: str = "baseline"
) -> LedgerRow:
    return LedgerRow(commit=commit, value=value, memory_gb=memory, status=status, description=description)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "results.tsv"


def fill(path: Path) -> list[LedgerRow]:
    rows = [
        row("a1b2c3d4e5f6", 0.997900, 45060.2 / 1024, "keep", "baseline"),
        row("b2c3d4e5f6a1", 0.993200, 44.2, "keep", "increase LR to 0.04"),
        row("c3d4e5f6a1b2", 1.005000, 44.0, "discard", "switch to GeLU activation"),
        row("d4e5f6a1b2c3", 0.0, 0.0, "crash", "double model width (OOM)"),
    ]
    ledger.create(path, "val_bpb")
    for item in rows:
        ledger.append(path, item)
    return rows


# --- format ------------------------------------------------------------------------------------------


def test_header_is_karpathys():
    assert ledger.header("val_bpb") == HEADER
    assert ledger.header("val_loss") == "commit\tval_loss\tmemory_gb\tstatus\tdescription"


def test_create_writes_the_header_only(path: Path):
    ledger.create(path, "val_bpb")
    assert path.read_bytes() == (HEADER + "\n").encode()
    assert ledger.read(path, "val_bpb") == []


def test_create_refuses_to_overwrite(path: Path):
    fill(path)
    before = path.read_bytes()
    with pytest.raises((FileExistsError, UserError)):
        ledger.create(path, "val_bpb")
    assert path.read_bytes() == before


def test_rows_are_formatted_exactly(path: Path):
    fill(path)
    assert path.read_text() == (
        f"{HEADER}\n"
        "a1b2c3d\t0.997900\t44.0\tkeep\tbaseline\n"
        "b2c3d4e\t0.993200\t44.2\tkeep\tincrease LR to 0.04\n"
        "c3d4e5f\t1.005000\t44.0\tdiscard\tswitch to GeLU activation\n"
        "d4e5f6a\t0.000000\t0.0\tcrash\tdouble model width (OOM)\n"
    )


@pytest.mark.parametrize(
    ("value", "memory", "expected"),
    [
        (0.9979, 44.0, "0.997900\t44.0"),
        (1.23456789, 12.345, "1.234568\t12.3"),
        (0.0, 0.0, "0.000000\t0.0"),
        (10.0, 80.06, "10.000000\t80.1"),
    ],
)
def test_value_has_6_decimals_and_memory_1(value: float, memory: float, expected: str):
    line = ledger.format_row(row("0123456789abcdef", value, memory, "discard", "x"))
    assert line == f"0123456\t{expected}\tdiscard\tx"


@pytest.mark.parametrize(
    "description",
    ["tab\there", "new\nline", "carriage\r\nreturn", "  lots\t\tof \n\n space  ", "bell\x07 and nul\x00"],
)
def test_descriptions_are_flattened_to_one_line(path: Path, description: str):
    ledger.create(path, "val_bpb")
    ledger.append(path, row(description=description))
    lines = path.read_text().split("\n")
    assert lines[-1] == "" and len(lines) == 3  # header, one row, nothing after the last newline
    cells = lines[1].split("\t")
    assert len(cells) == 5
    assert cells[4].strip() and "\r" not in cells[4] and "\x00" not in cells[4] and "\x07" not in cells[4]
    assert ledger.read(path, "val_bpb")[0].description == cells[4]


def test_unicode_description_round_trips(path: Path):
    ledger.create(path, "val_bpb")
    ledger.append(path, row(description="β2 0.95 → 0.99 (café)"))
    assert ledger.read(path, "val_bpb")[0].description == "β2 0.95 → 0.99 (café)"


def test_append_writes_whole_lines(path: Path):
    ledger.create(path, "val_bpb")
    size = path.stat().st_size
    for number in range(5):
        ledger.append(path, row(commit=f"{number:07x}abc", description=f"idea {number}"))
        data = path.read_bytes()
        assert data.endswith(b"\n")
        assert data[size:].count(b"\n") == 1  # exactly one new, whole line
        size = len(data)
    assert [r.description for r in ledger.read(path, "val_bpb")] == [f"idea {n}" for n in range(5)]


def test_read_round_trips_rows(path: Path):
    rows = fill(path)
    read = ledger.read(path, "val_bpb")
    assert [r.commit for r in read] == [r.commit[:7] for r in rows]
    assert [r.status for r in read] == ["keep", "keep", "discard", "crash"]
    assert [r.value for r in read] == [0.9979, 0.9932, 1.005, 0.0]
    assert [r.memory_gb for r in read] == [44.0, 44.2, 44.0, 0.0]
    assert [r.description for r in read] == [r.description for r in rows]


def test_readable_by_pandas_with_expected_dtypes(path: Path):
    fill(path)
    ledger.append(path, row("e5f6a1b2c3d4", 0.99, 44.0, "discard", "tabs\tand\nnewlines in a description"))
    frame = pd.read_csv(path, sep="\t")
    assert list(frame.columns) == ["commit", "val_bpb", "memory_gb", "status", "description"]
    assert len(frame) == 5
    assert pd.api.types.is_float_dtype(frame["val_bpb"])
    assert pd.api.types.is_float_dtype(frame["memory_gb"])
    for column in ("commit", "status", "description"):
        assert pd.api.types.is_string_dtype(frame[column]), (column, frame[column].dtype)
    assert list(frame["commit"]) == ["a1b2c3d", "b2c3d4e", "c3d4e5f", "d4e5f6a", "e5f6a1b"]
    assert list(frame["status"]) == ["keep", "keep", "discard", "crash", "discard"]
    assert frame["val_bpb"].tolist() == [0.9979, 0.9932, 1.005, 0.0, 0.99]
    assert frame["description"].iloc[4] == "tabs and newlines in a description"


# --- parse errors ------------------------------------------------------------------------------------


def write(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


GOOD_ROW = "a1b2c3d\t0.997900\t44.0\tkeep\tbaseline"


@pytest.mark.parametrize(
    "bad_header",
    [
        "commit,val_bpb,memory_gb,status,description",
        "commit\tval_bpb\tmemory_gb\tstatus",
        "hash\tval_bpb\tmemory_gb\tstatus\tdescription",
        "commit\tval_bpb\tmemory\tstatus\tdescription",
        "commit\tval_bpb\tmemory_gb\tstatus\tdescription\textra",
    ],
)
def test_wrong_header_is_a_user_error_naming_the_file(path: Path, bad_header: str):
    write(path, bad_header, GOOD_ROW)
    with pytest.raises(UserError) as error:
        ledger.read(path, "val_bpb")
    assert str(path) in str(error.value)
    assert "header" in str(error.value)


def test_header_naming_another_metric_is_a_user_error(path: Path):
    write(path, "commit\tval_loss\tmemory_gb\tstatus\tdescription", GOOD_ROW)
    with pytest.raises(UserError) as error:
        ledger.read(path, "val_bpb")
    assert str(path) in str(error.value) and "val_bpb" in str(error.value)
    assert len(ledger.read(path)) == 1  # without a metric to check, any metric name is accepted


def test_empty_file_is_a_user_error(path: Path):
    path.write_text("")
    with pytest.raises(UserError) as error:
        ledger.read(path, "val_bpb")
    assert str(path) in str(error.value)


@pytest.mark.parametrize(
    ("bad_line", "fragment"),
    [
        ("a1b2c3d\t0.990000\t44.0\tkeep", "columns"),  # 4 columns
        ("a1b2c3d\t0.990000\t44.0\tkeep\tx\ty", "columns"),  # 6 columns
        ("a1b2c3d\t0.990000\t44.0\tkept\tx", "status"),
        ("a1b2c3d\t0.990000\t44.0\t\tx", "status"),
        ("a1b2c3d\tabc\t44.0\tkeep\tx", "number"),
        ("a1b2c3d\t0.990000\tlots\tkeep\tx", "number"),
    ],
)
def test_bad_row_is_a_user_error_naming_file_and_line(path: Path, bad_line: str, fragment: str):
    write(path, HEADER, GOOD_ROW, GOOD_ROW.replace("a1b2c3d", "b2c3d4e"), bad_line, GOOD_ROW)
    with pytest.raises(UserError) as error:
        ledger.read(path, "val_bpb")
    message = str(error.value)
    assert str(path) in message
    assert "line 4" in message
    assert fragment in message
    assert "\n" not in message


def test_blank_lines_are_ignored(path: Path):
    write(path, HEADER, GOOD_ROW, "", GOOD_ROW.replace("a1b2c3d", "b2c3d4e"))
    assert [r.commit for r in ledger.read(path, "val_bpb")] == ["a1b2c3d", "b2c3d4e"]


# --- torn tail ---------------------------------------------------------------------------------------


def test_clean_file_is_untouched(path: Path):
    fill(path)
    before = path.read_bytes()
    assert ledger.repair_torn_tail(path, "val_bpb") is None
    assert path.read_bytes() == before
    assert not path.with_name("results.tsv.torn").exists()


def test_header_only_file_is_untouched(path: Path):
    ledger.create(path, "val_bpb")
    assert ledger.repair_torn_tail(path, "val_bpb") is None
    assert path.read_bytes() == (HEADER + "\n").encode()


def test_last_line_missing_only_its_newline_is_completed(path: Path):
    fill(path)
    complete = path.read_bytes()
    path.write_bytes(complete[:-1])
    done = ledger.repair_torn_tail(path, "val_bpb")
    assert done
    assert path.read_bytes() == complete
    assert len(ledger.read(path, "val_bpb")) == 4
    assert not path.with_name("results.tsv.torn").exists()
    assert ledger.repair_torn_tail(path, "val_bpb") is None  # idempotent


@pytest.mark.parametrize(
    "torn",
    [
        "e5f6a1b",
        "e5f6a1b\t0.99",
        "e5f6a1b\t0.991000\t44.0\tke",
        "e5f6a1b\t0.991000\t44.0\tkeep",  # 4 columns: the tab and the description were lost
        "e5f6a1b\t0.991000\t4",
    ],
)
def test_torn_partial_line_is_moved_aside_and_nothing_is_lost(path: Path, torn: str):
    fill(path)
    whole = path.read_bytes()
    path.write_bytes(whole + torn.encode())
    done = ledger.repair_torn_tail(path, "val_bpb")
    assert done and "results.tsv.torn" in done
    assert path.read_bytes() == whole  # ends with whole lines, all of them kept
    assert path.with_name("results.tsv.torn").read_bytes() == torn.encode() + b"\n"
    assert len(ledger.read(path, "val_bpb")) == 4
    assert ledger.repair_torn_tail(path, "val_bpb") is None


def test_second_torn_line_is_appended_to_the_torn_file(path: Path):
    fill(path)
    whole = path.read_bytes()
    path.write_bytes(whole + b"e5f6a1b\t0.9")
    ledger.repair_torn_tail(path, "val_bpb")
    path.write_bytes(whole + b"f6a1b2c\t1.0")
    ledger.repair_torn_tail(path, "val_bpb")
    assert path.with_name("results.tsv.torn").read_bytes() == b"e5f6a1b\t0.9\nf6a1b2c\t1.0\n"
    assert path.read_bytes() == whole


def test_torn_header_is_completed(path: Path):
    path.write_bytes(HEADER.encode()[:12])
    assert ledger.repair_torn_tail(path, "val_bpb")
    assert path.read_bytes() == (HEADER + "\n").encode()
    assert ledger.read(path, "val_bpb") == []


def test_line_torn_inside_a_multibyte_character_leaves_a_valid_utf8_file(path: Path):
    """A tear in the middle of a UTF-8 character is a torn line, not a line that only lost its newline.

    The file must stay valid UTF-8 (readable by pandas), and the torn bytes must survive somewhere.
    """
    fill(path)
    whole = path.read_bytes()
    full_line = "e5f6a1b\t0.991000\t44.0\tdiscard\tβ2 → 0.99\n".encode()
    torn = full_line[: full_line.index("→".encode()) + 1]  # first byte of the 3-byte arrow
    path.write_bytes(whole + torn)
    ledger.repair_torn_tail(path, "val_bpb")
    data = path.read_bytes()
    data.decode("utf-8")  # strict: raises on the half character
    assert data.endswith(b"\n")
    torn_file = path.with_name("results.tsv.torn")
    kept = data + (torn_file.read_bytes() if torn_file.exists() else b"")
    assert torn in kept
    pd.read_csv(path, sep="\t")


def test_read_torn_ok_ignores_an_unterminated_last_line(path: Path):
    fill(path)
    whole = path.read_bytes()
    path.write_bytes(whole + b"e5f6a1b\t0.99")
    with pytest.raises(UserError):
        ledger.read(path, "val_bpb")
    assert len(ledger.read(path, "val_bpb", torn_ok=True)) == 4
    assert path.read_bytes() == whole + b"e5f6a1b\t0.99"  # reading never repairs


def test_read_torn_ok_ignores_even_a_parseable_unterminated_line(path: Path):
    fill(path)
    with open(path, "a") as handle:
        handle.write("e5f6a1b\t0.991000\t44.0\tkeep\tcomplete but unterminated")
    assert len(ledger.read(path, "val_bpb", torn_ok=True)) == 4
    assert len(ledger.read(path, "val_bpb")) == 5


# --- last_keep ---------------------------------------------------------------------------------------


def test_last_keep(path: Path):
    rows = fill(path)
    read = ledger.read(path, "val_bpb")
    assert ledger.last_keep(read).commit == rows[1].commit[:7]
    ledger.append(path, row("e5f6a1b2c3d4", 0.98, 44.0, "keep", "a later keep"))
    ledger.append(path, row("f6a1b2c3d4e5", 0.0, 0.0, "crash", "then a crash"))
    assert ledger.last_keep(ledger.read(path, "val_bpb")).commit == "e5f6a1b"


def test_last_keep_without_keeps_is_none():
    assert ledger.last_keep([]) is None
    assert ledger.last_keep([row(status="discard"), row(status="crash", value=0.0, memory=0.0)]) is None
