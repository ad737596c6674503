from __future__ import annotations

from autoresearch.tasks.spec import iteration_cache_key
from prefect import task

from autoresearch.edits import EditResult
from autoresearch.gitops import TRAILER_ITERATION, TRAILER_TAG
from autoresearch.iteration import Iteration
from autoresearch.models import Proposal


@task(name="commit", persist_result=True, cache_key_fn=iteration_cache_key)
def commit(spec: Iteration, proposal: Proposal, edited: EditResult) -> str:
    """`experiment: <description>` with the editable files only; the branch advances to it unless refused
    (or a candidate of deployed mode's window).

    Idempotent: an earlier attempt of this iteration that already committed is found and returned.
    Every experiment commit stays reachable under refs/autoresearch/<tag>/<commit>.
    """
    if spec.given_commit:
        return spec.given_commit
    ws = spec.workspace()
    tip = ws.git.resolve(ws.branch)
    if not spec.candidate and tip != spec.baseline_commit and _is_this_iteration(spec, tip):
        return tip
    message = f"experiment: {proposal.description}\n\n{TRAILER_TAG}: {spec.loop.tag}\n{TRAILER_ITERATION}: {spec.iteration}\n"
    sha = ws.git.commit_tree(spec.parent_commit, edited.files, message)
    ws.git.keep_reachable(ws.experiment_ref(sha), sha)
    if edited.refused is None and not spec.candidate:  # a window's candidates stay off the branch until the loop logs them
        ws.move_branch(sha, expected_tip=spec.baseline_commit)
    return sha


def _is_this_iteration(spec: Iteration, commit: str) -> bool:
    ws = spec.workspace()
    trailers = ws.git.trailers(commit)
    return (
        ws.git.parent(commit) == spec.parent_commit
        and trailers.get(TRAILER_TAG) == spec.loop.tag
        and trailers.get(TRAILER_ITERATION) == str(spec.iteration)
    )
