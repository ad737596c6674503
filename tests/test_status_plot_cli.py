"""`autoresearch status` and `autoresearch plot` on any results.tsv: the loop's, one written by hand, karpathy's agent's."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import pytest
from conftest import cli, git

from autoresearch import ledger
from autoresearch.errors import UserError
from autoresearch.summary import read_results

# As karpathy's agent writes it (program.md's example) plus what people and agents vary: a literal
# `baseline` commit, upper-case status, CRLF, a tab inside a description, an empty crash value.
HAND_WRITTEN = (
    "commit\tval_bpb\tmemory_gb\tstatus\tdescription\n"
    "baseline\t0.997900\t44.0\tkeep\tbaseline\n"
    "b2c3d4e\t0.993200\t44.2\tKEEP\tincrease LR to 0.04\r\n"
    "c3d4e5f\t1.005000\t44.0\tdiscard\tswitch to GeLU\tactivation\n"
    "d4e5f6g\t0.000000\t0.0\tcrash\tdouble model width [OOM]\n"
    "e5f6a7b\t\t\tcrash\tforgot the metric\n"
    "\n"
    "f6a7b8c\t0.980000\t44.1\t keep \tdepth 9 | wider\n"
)


@pytest.fixture
def hand(tmp_path: Path) -> Path:
    path = tmp_path / "night" / "results.tsv"
    path.parent.mkdir()
    path.write_text(HAND_WRITTEN)
    return path


def test_read_results_forgives_hand_written_ledgers_and_read_stays_strict(hand: Path):
    results = read_results(hand)
    assert results.attrs["metric"] == "val_bpb" and len(results) == 6
    assert list(results.columns) == ["commit", "value", "memory_gb", "status", "description"]
    assert results["commit"][0] == "baseline"
    assert results["status"].tolist() == ["keep", "keep", "discard", "crash", "crash", "keep"]
    assert results["description"][2] == "switch to GeLU activation" and math.isnan(results["value"][4])
    assert results["description"][5] == "depth 9 | wider" and results["memory_gb"][5] == 44.1
    with pytest.raises(UserError, match="line 3: status 'KEEP'"):
        ledger.read(hand, "val_bpb")  # the loop's own ledger is never read leniently


def test_read_results_ignores_a_row_being_written_and_names_bad_lines(tmp_path: Path, hand: Path):
    hand.write_text(HAND_WRITTEN + "a7b8c9d\t0.97")
    assert len(read_results(hand)) == 6
    bad = tmp_path / "bad.tsv"
    bad.write_text("commit\tval_bpb\tmemory_gb\tstatus\tdescription\nabc\tfast\t1.0\tkeep\tx\n")
    with pytest.raises(UserError, match=r"bad.tsv line 2: value and memory_gb must be numbers"):
        read_results(bad)
    head = "commit\tval_bpb\tmemory_gb\tstatus\tdescription\n"
    bad.write_text(head + "abc\t1.0\t1.0\tkeep\tx\n\nabd\t1.0\tkeep\n")
    with pytest.raises(UserError, match=r"bad.tsv line 4: expected 5 tab-separated columns, found 3"):
        read_results(bad)
    bad.write_text(head + "abc\t1.0\t1.0\tmaybe\tx\n")
    with pytest.raises(UserError, match=r"bad.tsv line 2: status 'maybe' is not one of keep, discard, crash"):
        read_results(bad)
    bad.write_text(head)
    assert read_results(bad).empty
    bad.write_text("a,b,c\n")
    with pytest.raises(UserError, match="the header must be"):
        read_results(bad)


def test_status_of_a_hand_written_file(hand: Path):
    result = cli("status", "--file", str(hand), env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "baseline 0.997900 -> best 0.980000 at f6a7b8c: depth 9 | wider" in out
    assert "improvement +0.017900 (+1.79%) (minimize); 6 runs: 3 kept, 1 discarded, 2 crashed" in out
    assert "double model width [OOM]" in out  # descriptions are text, not rich markup
    assert "Top gains" in out and "+0.013200" in out and "+0.004700" in out
    assert out.index("+0.013200") < out.index("+0.004700")  # biggest gain first


def test_status_direction_flag_and_its_validation(hand: Path):
    maximizing = cli("status", "--file", str(hand), "--direction", "maximize", env={"COLUMNS": "200"})
    assert maximizing.returncode == 0 and "best 0.997900" in maximizing.stdout
    bad = cli("status", "--file", str(hand), "--direction", "up")
    assert bad.returncode == 2 and bad.stderr.strip() == "error: --direction 'up': use minimize or maximize"


def test_status_of_a_repo_without_loop_state(tmp_path: Path):
    repo = tmp_path / "theirs"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "results.tsv").write_text(HAND_WRITTEN)
    result = cli("status", "--repo", str(repo), "--rows", "2", env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert "depth 9" in result.stdout and "switch to GeLU" not in result.stdout  # the last 2 rows only


@pytest.mark.slow
def test_status_and_plot_errors_are_one_line(tmp_path: Path):
    for command in ("status", "plot"):
        result = cli(command, "--repo", str(tmp_path))
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and "no results.tsv in" in result.stderr
    missing = cli("status", "--file", str(tmp_path / "nope.tsv"))
    assert missing.returncode == 2 and "nope.tsv does not exist" in missing.stderr


@pytest.mark.slow
def test_plot_writes_karpathys_png(hand: Path, tmp_path: Path):
    output = tmp_path / "out" / "progress.png"
    output.parent.mkdir()
    result = cli("plot", "--file", str(hand), "-o", str(output), "--tag", "nov25")
    assert result.returncode == 0, result.stderr
    assert "nov25: 6 Experiments, 3 Kept Improvements" in result.stdout
    png = output.read_bytes()
    assert png.startswith(b"\x89PNG") and struct.unpack(">II", png[16:24])[0] > 1500  # 16 in at 150 dpi
    unwritable = cli("plot", "--file", str(hand), "-o", str(tmp_path / "no" / "such" / "dir.png"))
    assert unwritable.returncode == 2 and "pass -o a writable path" in unwritable.stderr
