from __future__ import annotations

from autoresearch.tasks.spec import iteration_cache_key
from prefect import task

from autoresearch.edits import EditResult, apply_edits
from autoresearch.guard import guard_edit
from autoresearch.iteration import Iteration
from autoresearch.models import Proposal


@task(name="edit", persist_result=True, cache_key_fn=iteration_cache_key)
def edit(spec: Iteration, proposal: Proposal) -> EditResult:
    """Apply the proposal to the editable files of the baseline (of the crashed commit, for a fix), in memory."""
    if not spec.edits_code:
        return EditResult()
    ws = spec.workspace()
    originals = {path: ws.git.show(spec.parent_commit, path) or "" for path in ws.config.editable}
    readonly = {path: ws.git.show(spec.parent_commit, path) or "" for path in ws.config.readonly}
    result = guard_edit(apply_edits(originals, proposal.edits), originals, readonly, ws.config.protected_names)
    if proposal.refused:  # the proposer gave up (invalid replies, an agent that touched other files)
        return EditResult(files=result.files, refused=proposal.refused)
    return result
