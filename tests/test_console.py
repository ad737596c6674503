"""The terminal's story: labelled result lines, a live line, plain unwrapped lines when not a terminal."""

from __future__ import annotations

import io
from pathlib import Path

from conftest import cli
from rich.console import Console

from autoresearch import console, ledger
from autoresearch.models import LedgerRow


def result(**changes) -> console.IterationResult:
    values = dict(
        iteration=7,
        description="MATRIX_LR 0.04 -> 0.06",
        metric="val_bpb",
        value=0.9912,
        best_before=0.9934,
        status="keep",
        reason="improves val_bpb by 0.002200",
    )
    return console.IterationResult(**{**values, **changes})


def test_result_line_is_labelled():
    assert console.result_line(result()) == (
        "iter 0007  MATRIX_LR 0.04 -> 0.06  val_bpb 0.9912 (best 0.9934, -0.0022)  keep: improves val_bpb by 0.002200"
    )
    assert console.result_line(result(iteration=0, description="baseline", best_before=None, reason="baseline")) == (
        "iter 0000  baseline  val_bpb 0.9912  keep: baseline"
    )
    crashed = console.result_line(result(status="crash", value=0.0, reason="exit code 1"))
    assert crashed == "iter 0007  MATRIX_LR 0.04 -> 0.06  crash: exit code 1"


def test_live_line_shows_description_progress_and_budget():
    line = console.live_line(7, "DEPTH 2 -> 3", 45.0, "step 00120 loss 3.2100", 65.0, 300)
    assert line == "iter 0007  DEPTH 2 -> 3  training 45%  step 00120 loss 3.2100  1:05 / 5:00 budget"
    assert "proposing" in console.live_line(7, "proposing the next idea", None, None, 3.0, None)


def test_story_off_a_terminal_prints_plain_lines_that_never_wrap():
    buffer = io.StringIO()
    story = console.Story(Console(file=buffer, width=40, force_terminal=False), time_budget=10)
    repo = Path("/some/rather/long/path/to/an/experiment/repository")
    with console.telling(story):
        console.loop_started("http://127.0.0.1:4200/flow-runs/flow-run/0123")
        console.iteration_started(1, "MATRIX_LR 0.04 -> 0.06")
        console.training(50.0, "step 00010 loss 3.0000")
        console.iteration_result(result(iteration=1))
    for line in console.summary_lines(_Summary(), repo, story.ui_url):
        story.say(line)
    lines = buffer.getvalue().splitlines()
    assert lines[0] == "watch it in the Prefect UI: http://127.0.0.1:4200/flow-runs/flow-run/0123"
    assert lines[1].startswith("iter 0001  MATRIX_LR 0.04 -> 0.06  val_bpb 0.9912")  # no live line off a terminal
    assert f"next: autoresearch status --repo {repo}" in lines  # whole, although longer than 40 columns
    assert f"      autoresearch plot --repo {repo} -o progress.png" in lines
    assert "\x1b[" not in buffer.getvalue()  # no colour codes in a pipe
    console.say("nobody listens")  # no story: the module functions do nothing


def test_story_on_a_terminal_draws_a_live_line_then_the_result():
    buffer = io.StringIO()
    story = console.Story(Console(file=buffer, width=120, force_terminal=True), time_budget=10)
    with console.telling(story):
        console.iteration_started(2, "DEPTH 2 -> 3")
        console.training(40.0, "step 00042 loss 2.5000")
        story._live.refresh()
        console.iteration_result(result(iteration=2, description="DEPTH 2 -> 3", status="discard"))
    text = buffer.getvalue()
    assert "training 40%" in text and "step 00042 loss 2.5000" in text
    assert "iter 0002  DEPTH 2 -> 3  val_bpb 0.9912 (best 0.9934, -0.0022)  discard" in text


class _Summary:
    tag, stopped, rows, best_value, best_commit, branch = "demo", "ran 1 iterations", 2, 0.9912, "abc1234", "autoresearch/demo"


def test_status_says_how_many_rows_it_shows_and_takes_all(tmp_path: Path):
    path = tmp_path / "results.tsv"
    rows = [
        LedgerRow(commit=f"{n:07x}", value=2.0 - n / 100, memory_gb=0.1, status="keep", description=f"idea {n}")
        for n in range(26)
    ]
    ledger.create(path, "val_bpb")
    for row in rows:
        ledger.append(path, row)
    last = cli("status", "--file", str(path))
    assert last.returncode == 0, last.stderr
    assert "last 20 of 26 rows" in last.stdout and "--all" in last.stdout
    table = last.stdout.split("Top gains")[0]
    assert "idea 25" in table and "idea 5 " not in table
    every = cli("status", "--file", str(path), "--all")
    assert every.returncode == 0, every.stderr
    assert "all 26 rows" in every.stdout and "idea 5 " in every.stdout.split("Top gains")[0]
