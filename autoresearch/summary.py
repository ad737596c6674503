"""What a ledger says at a glance: baseline, best, keeps, crashes. Pure, works on any results.tsv."""

from __future__ import annotations

from pydantic import BaseModel

from autoresearch.models import LedgerRow


class LedgerSummary(BaseModel):
    experiments: int
    keeps: int
    discards: int
    crashes: int
    baseline: float | None
    best: float | None
    best_commit: str | None
    best_description: str | None
    improvement_percent: float | None


def summarize(rows: list[LedgerRow], direction: str = "minimize") -> LedgerSummary:
    keeps = [row for row in rows if row.status == "keep"]
    pick = min if direction == "minimize" else max
    best = pick(keeps, key=lambda row: row.value) if keeps else None
    baseline = keeps[0].value if keeps else None
    improvement = None
    if best and baseline:
        gain = baseline - best.value if direction == "minimize" else best.value - baseline
        improvement = 100.0 * gain / abs(baseline)
    return LedgerSummary(
        experiments=len(rows),
        keeps=len(keeps),
        discards=sum(row.status == "discard" for row in rows),
        crashes=sum(row.status == "crash" for row in rows),
        baseline=baseline,
        best=best.value if best else None,
        best_commit=best.commit if best else None,
        best_description=best.description if best else None,
        improvement_percent=improvement,
    )
