"""--parallel N: N candidates from one baseline train at once; the best one the decision table keeps wins.

Each candidate's `evaluate` publishes its own verdict on a board in the loop's state directory, waits
for its siblings', and derives the round's outcome, which every candidate computes identically:
the winner keeps, other would-be keeps become discards (one row each, git stays linear).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from autoresearch.models import Decision

POLL_SECONDS = 0.5


class Candidate(BaseModel):
    iteration: int
    commit: str
    verdict: Decision
    value: float | None = None


def round_decision(own: Candidate, everyone: list[Candidate], direction: Literal["minimize", "maximize"]) -> Decision:
    """The candidate's final decision once the whole round is known (pure)."""
    if own.verdict.status != "keep":
        return own.verdict
    keeps = [c for c in everyone if c.verdict.status == "keep" and c.value is not None]
    sign = 1 if direction == "minimize" else -1
    winner = min(keeps, key=lambda c: (sign * c.value, c.iteration))  # type: ignore[operator]
    if winner.iteration == own.iteration:
        others = len(everyone) - 1
        return own.verdict.model_copy(update={"reason": f"{own.verdict.reason}; best of {others + 1} candidates this round"})
    return own.verdict.model_copy(
        update={
            "status": "discard",
            "reason": f"{own.verdict.reason}, but {winner.commit[:7]} (iter {winner.iteration}, {winner.value:.6f}) "
            "did better this round",
        }
    )


class RoundBoard:
    """The round's verdicts as one small JSON file per candidate (written atomically)."""

    def __init__(self, state_dir: Path, tag: str, start: int, size: int) -> None:
        self.dir = state_dir / "rounds" / f"{tag}-{start:04d}"
        self.iterations = list(range(start, start + size))

    def publish(self, candidate: Candidate) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f"{candidate.iteration:04d}.json"
        temp = path.with_suffix(".tmp")
        temp.write_text(candidate.model_dump_json())
        os.replace(temp, path)

    def wait_for_all(self, timeout: float) -> list[Candidate]:
        until = time.monotonic() + timeout
        while True:
            found = [self._read(i) for i in self.iterations]
            if all(found):
                return found  # type: ignore[return-value]
            if time.monotonic() > until:
                missing = [i for i, c in zip(self.iterations, found, strict=True) if c is None]
                raise RuntimeError(f"candidates {missing} of this round never finished their evaluation; retry their runs")
            time.sleep(POLL_SECONDS)

    def _read(self, iteration: int) -> Candidate | None:
        try:
            return Candidate.model_validate(json.loads((self.dir / f"{iteration:04d}.json").read_text()))
        except (OSError, ValueError):
            return None


def wait_for_turn(count_rows, iteration: int, timeout: float) -> None:
    """Rows are appended in iteration order: wait until the ledger holds the earlier candidates' rows."""
    until = time.monotonic() + timeout
    while count_rows() < iteration:
        if time.monotonic() > until:
            raise RuntimeError(
                f"results.tsv still lacks the rows before iteration {iteration}; retry the earlier candidates' runs"
            )
        time.sleep(POLL_SECONDS)
