"""The loop's artifacts (pure builders) and the monitoring hooks, which never fail the research."""

from __future__ import annotations

import base64
import logging
import re
from pathlib import Path

from prefect import get_run_logger  # noqa: F401  (imports prefect.main, which configures logging: before caplog attaches)

from autoresearch.artifacts import artifact_key, ledger_table, summary_markdown
from autoresearch.models import LedgerRow
from autoresearch.monitor import after_iteration, loop_stopped
from autoresearch.summary import results_frame
from autoresearch.workspace import Workspace

ROWS = results_frame(
    [
        LedgerRow(commit="a1b2c3d", value=1.0, memory_gb=4.0, status="keep", description="baseline"),
        LedgerRow(commit="b2c3d4e", value=0.98, memory_gb=4.1, status="keep", description="LR 0.04 -> 0.06 | with <b>warmup</b>"),
        LedgerRow(commit="c3d4e5f", value=0.0, memory_gb=0.0, status="crash", description="DEPTH 4 -> 40 (OOM)"),
    ]
)


def test_keys_are_prefect_keys_and_unique_per_tag():
    assert artifact_key("ledger", "nov25") == "ledger-nov25"
    keys = {artifact_key("summary", tag) for tag in ("Nov25", "nov25", "v1.2", "v1-2", "run_3")}
    assert len(keys) == 5 and all(re.fullmatch(r"[a-z0-9-]+", key) for key in keys)


def test_ledger_table_reads_like_results_tsv():
    table = ledger_table(ROWS, "val_bpb")
    assert table[2] == {
        "#": "2",
        "commit": "c3d4e5f",
        "val_bpb": "0.000000",
        "memory_gb": "0.0",
        "status": "crash",
        "description": "DEPTH 4 -> 40 (OOM)",
    }


def test_summary_markdown_embeds_the_plot_and_keeps_descriptions_as_text():
    png = b"\x89PNG fake"
    markdown = summary_markdown(ROWS, "val_bpb", "minimize", "nov25", png=png)
    assert markdown.startswith("## nov25: 3 experiments, 2 kept")
    assert f"![progress plot](data:image/png;base64,{base64.b64encode(png).decode()})" in markdown
    assert "| improvement | +0.020000 | +2.00% (lower is better) |" in markdown
    assert "**3 runs:** 2 keep · 0 discard · 1 crash" in markdown
    assert r"LR 0\.04 \-&gt; 0\.06 \| with &lt;b&gt;warmup&lt;/b&gt;" in markdown  # a pipe or tag cannot break the table
    assert "| 1 | `b2c3d4e` | +0.020000 | 0.980000 |" in markdown
    assert (
        summary_markdown(ROWS.iloc[2:].reset_index(drop=True), "val_bpb", "minimize", "t")
        == "## t: 1 experiment, 0 kept\n\nNo keep yet: 0 discarded, 1 crashed."
    )


def test_hooks_log_a_warning_and_never_raise(repo: Path, caplog):
    ws = Workspace(repo, "t")
    (repo / "results.tsv").write_text("not a ledger\n")
    with caplog.at_level(logging.WARNING):
        after_iteration(ws, "a1b2c3d")
        loop_stopped(ws, "ran 1 iterations")
    messages = [record.getMessage() for record in caplog.records]
    assert any(m.startswith("loop artifacts not published (the loop goes on):") for m in messages)
    assert any(m.startswith("loop-stopped event not emitted:") for m in messages)
