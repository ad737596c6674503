"""Deployed mode's window: candidates train on every GPU slot while the next ones are proposed and queued.

Each candidate starts from the branch tip (the last keep) at the time it starts and is judged against
that baseline. The research loop logs candidates in the order they started; a keep moves the branch only
if the tip is still the candidate's baseline. A keep whose baseline moved meanwhile is logged as a
discard naming the keep that moved it, so git stays linear and every keep beat the branch it lands on.
"""

from __future__ import annotations

from autoresearch.models import Decision


def still_applies(verdict: Decision, started_from: str, tip: str) -> Decision:
    """The candidate's final decision: its own verdict, unless it would keep and the branch moved to `tip`."""
    if verdict.status != "keep" or tip == started_from:
        return verdict
    return verdict.model_copy(
        update={
            "status": "discard",
            "reason": f"{verdict.reason} over {started_from[:7]}, but {tip[:7]} was kept since this candidate "
            f"started (the branch moved from {started_from[:7]} to {tip[:7]})",
        }
    )
