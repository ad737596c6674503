"""The numbers behind `autoresearch status`, the summary artifact and karpathy's progress plot (pure), and the PNG."""

from __future__ import annotations

import math
import struct

import pandas as pd
import pytest

from autoresearch.models import LedgerRow
from autoresearch.plot import plot_data, render_png
from autoresearch.summary import gains, results_frame, summarize


def ledger(*rows: tuple[float, str, str]) -> pd.DataFrame:
    return results_frame(
        LedgerRow(commit=f"c{n:06d}", value=value, memory_gb=0.0 if status == "crash" else 44.0, status=status, description=text)
        for n, (value, status, text) in enumerate(rows)
    )


# karpathy's example night: a baseline, two gains, discards (one far off), crashes, a simplification keep.
NIGHT = ledger(
    (1.000000, "keep", "baseline"),
    (0.990000, "keep", "increase LR to 0.04"),
    (1.200000, "discard", "switch to GeLU activation"),  # far worse than the baseline: off-scale
    (0.000000, "crash", "double model width (OOM)"),
    (0.995000, "discard", "warmup 0.2"),
    (0.970000, "keep", "depth 9"),
    (0.970500, "keep", "remove unused dropout"),  # simpler, slightly worse: kept, but not a new best
    (0.000000, "crash", "typo"),
)


def test_summary_numbers_of_a_night():
    s = summarize(NIGHT)
    assert (s.experiments, s.keeps, s.discards, s.crashes) == (8, 4, 2, 2)
    assert s.baseline == 1.0 and s.best == 0.97 and s.best_commit == "c000005" and s.best_description == "depth 9"
    assert s.improvement == pytest.approx(0.03) and s.improvement_percent == pytest.approx(3.0)


def test_top_gains_are_keeps_against_the_keep_before_them_biggest_first():
    s = summarize(NIGHT)
    assert [(g.description, round(g.gain, 6)) for g in s.top_gains] == [
        ("depth 9", 0.02),
        ("increase LR to 0.04", 0.01),
        ("remove unused dropout", -0.0005),
    ]
    assert [g.previous for g in gains(NIGHT)] == [1.0, 0.99, 0.97]
    assert len(summarize(NIGHT, top=1).top_gains) == 1


def test_summary_when_maximizing():
    rows = ledger((0.50, "keep", "baseline"), (0.60, "keep", "more data"), (0.55, "discard", "less data"))
    s = summarize(rows, "maximize")
    assert s.best == 0.60 and s.improvement == pytest.approx(0.10) and s.improvement_percent == pytest.approx(20.0)
    assert [round(g.gain, 6) for g in s.top_gains] == [0.1]


def test_summary_without_keeps_and_of_an_empty_ledger():
    s = summarize(ledger((0.0, "crash", "baseline")))
    assert (s.experiments, s.crashes, s.best, s.baseline, s.improvement_percent, s.top_gains) == (1, 1, None, None, None, [])
    assert summarize(ledger()).experiments == 0


def test_a_keep_without_a_value_is_counted_but_never_best():
    rows = ledger((1.0, "keep", "baseline"), (math.nan, "keep", "hand-written, value missing"))
    s = summarize(rows)
    assert s.keeps == 2 and s.best == 1.0 and s.top_gains == []


def test_plot_data_follows_karpathys_notebook():
    data = plot_data(NIGHT, "val_bpb", "minimize", tag="nov25")
    assert data.title == "nov25: 8 Experiments, 4 Kept Improvements"  # every row; every keep (as his notebook counts)
    assert [(p.number, p.value, p.label) for p in data.kept] == [
        (0, 1.0, "baseline"),
        (1, 0.99, "increase LR to 0.04"),
        (5, 0.97, "depth 9"),
        (6, 0.9705, "remove unused dropout"),
    ]
    assert [(p.number, p.value) for p in data.discarded] == [(4, 0.995)]
    assert data.off_scale == 1  # the far-off discard leaves the view
    assert data.crashed == [3, 7]
    # The running best steps down at each new best and runs on to the last experiment.
    assert [(p.number, p.value) for p in data.best_line] == [(0, 1.0), (1, 0.99), (5, 0.97), (7, 0.97)]
    low, high = data.ylim
    assert low == pytest.approx(0.97 - 0.0045) and high == pytest.approx(1.0 + 0.0045)
    assert not low <= 0.0 <= high  # crash rows' 0.000000 stays out of the y-range


def test_plot_data_default_title_long_labels_and_maximize():
    rows = ledger((0.5, "keep", "baseline"), (0.6, "keep", "x" * 60), (0.55, "discard", "in range"), (0.1, "discard", "far"))
    data = plot_data(rows, "accuracy", "maximize")
    assert data.title == "Autoresearch Progress: 4 Experiments, 2 Kept Improvements"
    assert data.kept[1].label == "x" * 42 + "..."
    assert [(p.number, p.value) for p in data.best_line] == [(0, 0.5), (1, 0.6), (3, 0.6)]
    assert [p.number for p in data.discarded] == [2] and data.off_scale == 1


def test_plot_data_of_a_ledger_without_values():
    data = plot_data(ledger((0.0, "crash", "baseline")))
    assert (data.kept, data.best_line, data.ylim, data.crashed) == ([], [], None, [0])
    flat = plot_data(ledger((1.0, "keep", "baseline")))
    assert flat.ylim[0] < 1.0 < flat.ylim[1]  # no gain yet: still a visible range


@pytest.mark.parametrize("rows", [NIGHT, ledger((0.0, "crash", "baseline")), ledger()])
def test_render_png_writes_a_png_of_the_requested_size(tmp_path, rows):
    path = tmp_path / "progress.png"
    png = render_png(plot_data(rows), path, size=(8, 4), dpi=50)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and path.read_bytes() == png
    width, height = struct.unpack(">II", png[16:24])
    assert 300 <= width <= 400 and 150 <= height <= 200  # bbox_inches="tight" trims a little


def test_off_scale_discards_are_edge_markers_not_hidden(tmp_path):
    rows = ledger(
        (1.0, "keep", "baseline"), (0.99, "keep", "better"), (1.8, "discard", "far worse"), (0.5, "discard", "far better?")
    )
    data = plot_data(rows, "val_bpb", "minimize")
    assert [(p.number, p.value) for p in data.off_scale_points] == [(2, 1.8), (3, 0.5)]
    assert data.off_scale == 2 and data.discarded == []
    with_markers = render_png(data, size=(8, 4), dpi=50)
    without = render_png(data.model_copy(update={"off_scale_points": []}), size=(8, 4), dpi=50)
    assert with_markers != without  # the markers are drawn


def test_the_artifact_plot_is_large_enough_to_read():
    from autoresearch.artifacts import PLOT_DPI, PLOT_SIZE

    png = render_png(plot_data(NIGHT), size=PLOT_SIZE, dpi=PLOT_DPI)
    width, height = struct.unpack(">II", png[16:24])
    assert width >= 1200 and height >= 600
