"""What a ledger says at a glance: baseline, best, keeps, crashes, top gains. Pure, works on any results.tsv.

The numbers follow karpathy's analysis notebook: the baseline is the first keep, each keep's gain is
measured against the keep before it (experiments are cumulative), and improvement is in percent of
the baseline. Rows without a finite value (a hand-written empty cell) are counted but never best.
"""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Literal

from pydantic import BaseModel

from autoresearch.models import LedgerRow

Direction = Literal["minimize", "maximize"]


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


def better(a: float, b: float, direction: Direction) -> float:
    """How much `a` is better than `b` (negative: worse)."""
    return b - a if direction == "minimize" else a - b


def kept(rows: list[LedgerRow]) -> list[tuple[int, LedgerRow]]:
    """Numbered keeps with a finite value, in ledger order."""
    return [(number, row) for number, row in enumerate(rows) if row.status == "keep" and math.isfinite(row.value)]


def gains(rows: list[LedgerRow], direction: Direction = "minimize") -> list[Gain]:
    """Every keep after the first, with its gain over the keep before it (ledger order)."""
    keeps = kept(rows)
    return [
        Gain(
            number=number,
            commit=row.commit,
            description=row.description,
            value=row.value,
            previous=prev.value,
            gain=better(row.value, prev.value, direction),
        )
        for (_, prev), (number, row) in pairwise(keeps)
    ]


def summarize(rows: list[LedgerRow], direction: Direction = "minimize", top: int = 5) -> LedgerSummary:
    keeps = [row for _, row in kept(rows)]
    best = max(keeps, key=lambda row: better(row.value, 0.0, direction)) if keeps else None
    baseline = keeps[0].value if keeps else None
    improvement = better(best.value, baseline, direction) if best and baseline is not None else None
    percent = 100.0 * improvement / abs(baseline) if improvement is not None and baseline else None
    return LedgerSummary(
        experiments=len(rows),
        keeps=sum(row.status == "keep" for row in rows),
        discards=sum(row.status == "discard" for row in rows),
        crashes=sum(row.status == "crash" for row in rows),
        baseline=baseline,
        best=best.value if best else None,
        best_commit=best.commit if best else None,
        best_description=best.description if best else None,
        improvement=improvement,
        improvement_percent=percent,
        top_gains=sorted(gains(rows, direction), key=lambda gain: -gain.gain)[:top],
    )
