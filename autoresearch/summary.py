"""results.tsv for reading and analysis (status, plot, the summary artifact): a pandas DataFrame.

`read_results` reads any results.tsv in the protocol's format, also one written by hand or by an agent,
the way karpathy's analysis notebook does (`pd.read_csv(..., sep="\\t")`), forgiving what people and
agents vary. The loop's own ledger is written and read strictly by `autoresearch.ledger`.

The numbers follow karpathy's notebook: the baseline is the first keep, each keep's gain is measured
against the keep before it (experiments are cumulative), and improvement is in percent of the
baseline. Rows without a finite value (a hand-written empty cell) are counted but never best.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel

from autoresearch.errors import UserError
from autoresearch.ledger import STATUSES, whole_lines
from autoresearch.models import LedgerRow, one_line

Direction = Literal["minimize", "maximize"]
COLUMNS = ["commit", "value", "memory_gb", "status", "description"]
HEADER = ["commit", "memory_gb", "status", "description"]  # around the metric's own column


class Gain(BaseModel):
    """A keep and how much it improved on the keep before it (positive = better, in either direction)."""

    number: int  # the row's index in results.tsv, 0 = first row
    commit: str
    description: str
    value: float
    previous: float
    gain: float


class LedgerSummary(BaseModel):
    experiments: int
    keeps: int
    discards: int
    crashes: int
    baseline: float | None
    best: float | None
    best_commit: str | None
    best_description: str | None
    improvement: float | None  # baseline - best when minimizing, best - baseline when maximizing
    improvement_percent: float | None
    top_gains: list[Gain] = []


def read_results(path: Path) -> pd.DataFrame:
    """Any results.tsv as a DataFrame (columns COLUMNS, index = row number from 0; `attrs["metric"]`).

    Forgives a literal `baseline` commit, `KEEP`/` keep `, CRLF line ends, tabs inside the description,
    a missing trailing description, an empty value (NaN: not plotted, never best) and an unterminated
    last line (a row being written). Refuses what it cannot read, naming the line, in one line.
    """
    if not path.is_file():
        raise UserError(f"{path} does not exist; pass the results.tsv of a research loop")
    lines = pd.Series(whole_lines(path.read_text(encoding="utf-8", errors="replace")).splitlines(), dtype=object)
    header = [cell.strip() for cell in lines.iloc[0].split("\t")] if len(lines) else []
    if [cell.lower() for cell in header[:1] + header[2:]] != HEADER:
        raise UserError(
            f"{path}: the header must be 'commit\\t<metric>\\tmemory_gb\\tstatus\\tdescription'; is this a results.tsv?"
        )
    body = lines.iloc[1:].set_axis(range(2, len(lines) + 1))  # index: the line number in the file
    frame = _rows(body[body.str.strip() != ""], path)
    frame.attrs["metric"] = header[1]
    return frame


def _rows(lines: pd.Series, path: Path) -> pd.DataFrame:
    """The body's lines as typed columns, checked line by line (errors name the first bad line)."""
    if lines.empty:
        return results_frame([])
    cells = lines.str.split("\t", expand=True) if len(lines) else pd.DataFrame(columns=range(5), dtype=object)
    cells = cells.reindex(columns=range(max(5, len(cells.columns))))
    for number, count in cells.notna().sum(axis=1).loc[lambda counts: counts < 4].items():
        raise UserError(f"{path} line {number}: expected 5 tab-separated columns, found {count}; fix the line")
    frame = pd.DataFrame({"commit": cells[0].str.strip()}, index=cells.index)
    for column, source in (("value", 1), ("memory_gb", 2)):
        raw = cells[source].str.strip().replace("", "nan")
        for number in raw.index[~raw.map(_is_number).astype(bool)][:1]:
            raise UserError(f"{path} line {number}: value and memory_gb must be numbers; fix the line")
        frame[column] = raw.astype(float)
    frame["status"] = cells[3].str.strip().str.lower()
    for number, status in frame["status"][~frame["status"].isin(STATUSES)].items():
        raise UserError(f"{path} line {number}: status {status!r} is not one of keep, discard, crash; fix the line")
    frame["description"] = cells.iloc[:, 4:].apply(lambda row: one_line(" ".join(row.dropna())), axis=1).astype(str)
    return frame.reset_index(drop=True)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def results_frame(rows: Iterable[LedgerRow], metric: str = "val_bpb") -> pd.DataFrame:
    """Rows already read (the loop's own strict ledger) as the same DataFrame as `read_results`."""
    frame = pd.DataFrame([row.model_dump() for row in rows], columns=COLUMNS)
    frame = frame.astype({"value": float, "memory_gb": float, "commit": str, "status": str, "description": str})
    frame.attrs["metric"] = metric
    return frame


def better(a: float, b: float, direction: Direction) -> float:
    """How much `a` is better than `b` (negative: worse)."""
    return b - a if direction == "minimize" else a - b


def kept(results: pd.DataFrame) -> pd.DataFrame:
    """The keeps with a finite value, in ledger order (index = row number)."""
    return results[(results["status"] == "keep") & np.isfinite(results["value"])]


def gains(results: pd.DataFrame, direction: Direction = "minimize") -> list[Gain]:
    """Every keep after the first, with its gain over the keep before it (ledger order)."""
    keeps = kept(results)
    previous = keeps["value"].shift(1)
    return [
        Gain(
            number=number,
            commit=row.commit,
            description=row.description,
            value=row.value,
            previous=prev,
            gain=better(row.value, prev, direction),
        )
        for (number, row), prev in zip(keeps.iloc[1:].iterrows(), previous.iloc[1:], strict=True)
    ]


def summarize(results: pd.DataFrame, direction: Direction = "minimize", top: int = 5) -> LedgerSummary:
    keeps = kept(results)
    counts = results["status"].value_counts()
    best = keeps.loc[keeps["value"].idxmin() if direction == "minimize" else keeps["value"].idxmax()] if len(keeps) else None
    baseline = float(keeps["value"].iloc[0]) if len(keeps) else None
    improvement = better(best["value"], baseline, direction) if best is not None and baseline is not None else None
    percent = 100.0 * improvement / abs(baseline) if improvement is not None and baseline else None
    return LedgerSummary(
        experiments=len(results),
        keeps=int(counts.get("keep", 0)),
        discards=int(counts.get("discard", 0)),
        crashes=int(counts.get("crash", 0)),
        baseline=baseline,
        best=float(best["value"]) if best is not None else None,
        best_commit=best["commit"] if best is not None else None,
        best_description=best["description"] if best is not None else None,
        improvement=improvement,
        improvement_percent=percent,
        top_gains=sorted(gains(results, direction), key=lambda gain: -gain.gain)[:top],
    )
