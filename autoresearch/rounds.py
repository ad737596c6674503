"""--parallel N: N candidates from one baseline train at once; the best one the decision table keeps wins.

The research loop collects every candidate's own verdict, then decides the round here (pure): the
winner keeps, other would-be keeps become discards (one row each, git stays linear).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from autoresearch.iteration import IterationOutcome
from autoresearch.models import Decision


class Candidate(BaseModel):
    iteration: int
    commit: str
    verdict: Decision
    value: float | None = None


def decide(outcomes: list[IterationOutcome], direction: Literal["minimize", "maximize"]) -> list[Decision]:
    """Each candidate's final decision, in the round's order."""
    everyone = [
        Candidate(iteration=o.iteration, commit=o.commit, verdict=o.verdict, value=o.metrics.value if o.metrics else None)
        for o in outcomes
    ]
    return [round_decision(candidate, everyone, direction) for candidate in everyone]


def winner(outcomes: list[IterationOutcome]) -> IterationOutcome:
    """The logged outcome the next round starts from: the round's keep, else its last."""
    return next((o for o in outcomes if o.verdict.status == "keep"), outcomes[-1])


def round_decision(own: Candidate, everyone: list[Candidate], direction: Literal["minimize", "maximize"]) -> Decision:
    """The candidate's final decision once the whole round is known."""
    if own.verdict.status != "keep":
        return own.verdict
    keeps = [c for c in everyone if c.verdict.status == "keep" and c.value is not None]
    sign = 1 if direction == "minimize" else -1
    best = min(keeps, key=lambda c: (sign * c.value, c.iteration))  # type: ignore[operator]
    if best.iteration == own.iteration:
        return own.verdict.model_copy(update={"reason": f"{own.verdict.reason}; best of {len(everyone)} candidates this round"})
    return own.verdict.model_copy(
        update={
            "status": "discard",
            "reason": f"{own.verdict.reason}, but {best.commit[:7]} (iter {best.iteration}, {best.value:.6f}) "
            "did better this round",
        }
    )
