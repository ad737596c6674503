from __future__ import annotations

from prefect import task

from autoresearch.edits import EditResult, apply_edits
from autoresearch.models import Proposal
from autoresearch.tasks.spec import IterationSpec, iteration_cache_key


@task(name="edit", persist_result=True, cache_key_fn=iteration_cache_key)
def edit(spec: IterationSpec, proposal: Proposal) -> EditResult:
    """Apply the proposal to the baseline's editable files (in memory); refuse anything else."""
    if spec.is_baseline or spec.resume_commit:
        return EditResult()
    ws = spec.workspace()
    originals = {path: ws.git.show(spec.baseline_commit, path) or "" for path in ws.config.editable}
    return apply_edits(originals, proposal.edits)
