from __future__ import annotations

from autoresearch.tasks.spec import IterationSpec, iteration_cache_key
from prefect import task

from autoresearch.models import Decision


@task(name="keep_or_reset", persist_result=True, cache_key_fn=iteration_cache_key)
def keep_or_reset(spec: IterationSpec, commit: str, verdict: Decision) -> str:
    """Keep: the branch stays at (or moves to) the commit. Otherwise: back to the baseline. Returns the new baseline."""
    ws = spec.workspace()
    if spec.in_round:  # the branch never left the baseline; only the round's winner moves it
        if verdict.status != "keep":
            return spec.baseline_commit
        ws.move_branch(commit, expected_tip=spec.baseline_commit)
        return commit
    target = commit if verdict.status == "keep" else spec.baseline_commit
    ws.move_branch(target)
    return target
