from __future__ import annotations

from prefect import task

from autoresearch import ledger
from autoresearch.models import Proposal, ProposalContext
from autoresearch.proposers import get_proposer
from autoresearch.tasks.spec import IterationSpec, iteration_cache_key

EXPERIMENT_PREFIX = "experiment: "


@task(name="hypothesize", persist_result=True, cache_key_fn=iteration_cache_key)
def hypothesize(spec: IterationSpec) -> Proposal:
    """One focused idea from the proposer, given the program, the editable files and the whole ledger."""
    ws = spec.workspace()
    if spec.resume_commit:
        subject = ws.git.message(spec.resume_commit).splitlines()[0]
        return Proposal(description=subject.removeprefix(EXPERIMENT_PREFIX), rationale="resumed after an interruption")
    if spec.is_baseline:
        return Proposal(description="baseline", rationale="the unmodified code, to compare against")
    config = ws.config
    context = ProposalContext(
        iteration=spec.iteration,
        baseline_commit=spec.baseline_commit,
        editable_files={path: ws.git.show(spec.baseline_commit, path) or "" for path in config.editable},
        program=ws.git.show(spec.baseline_commit, config.program) or "",
        history=ledger.read(ws.ledger_path, config.metric),
        metric=config.metric,
        direction=config.direction,
        seed=config.seed,
    )
    return get_proposer(spec.proposer).propose(context)
