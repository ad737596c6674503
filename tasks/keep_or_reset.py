from __future__ import annotations

from autoresearch.tasks.spec import iteration_cache_key
from prefect import task

from autoresearch.iteration import Iteration
from autoresearch.models import Decision


@task(name="keep_or_reset", persist_result=True, cache_key_fn=iteration_cache_key)
def keep_or_reset(spec: Iteration, commit: str, verdict: Decision) -> str:
    """Keep: the branch stays at (or moves to) the commit. Otherwise: back to the baseline. Returns the new baseline.

    A window's candidates never left the baseline: only a keep moves the branch (the loop calls this for it).
    """
    ws = spec.workspace()
    target = commit if verdict.status == "keep" else spec.baseline_commit
    ws.move_branch(target, expected_tip=spec.baseline_commit if spec.candidate else None)
    return target
