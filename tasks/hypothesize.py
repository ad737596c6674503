from __future__ import annotations

import json

from autoresearch.tasks.spec import iteration_cache_key
from prefect import task

from autoresearch import ledger
from autoresearch.iteration import EXPERIMENT_PREFIX, MAX_FIX_ATTEMPTS, Fix, Idea, Iteration, Resumed, preset_proposal
from autoresearch.metrics import extract as extract_metrics
from autoresearch.models import CrashReport, LedgerRow, Proposal, ProposalContext
from autoresearch.prefetch import PREFETCHER, STILL_TRAINING, PrefetchKey, usable
from autoresearch.prompt import public_interface, run_facts
from autoresearch.proposers import get_proposer
from autoresearch.secrets import redact
from autoresearch.workspace import WORK_DIR, Workspace


@task(name="hypothesize", persist_result=True, cache_key_fn=iteration_cache_key)
def hypothesize(spec: Iteration) -> Proposal:
    """One focused idea from the proposer, given the program, the editable files and the whole ledger."""
    ws = spec.workspace()
    subject = ws.git.message(spec.kind.commit).splitlines()[0] if isinstance(spec.kind, Resumed) else ""
    preset = preset_proposal(spec, subject)
    if preset is not None:
        return preset
    options = spec.loop
    context = _with_candidates_in_flight(ws, spec, proposal_context(ws, spec)) if spec.candidate else None
    proposal = _prefetched(ws, spec) or get_proposer(options.proposer, **options.proposer_options).propose(
        context or proposal_context(ws, spec)
    )
    if isinstance(spec.kind, Fix):
        proposal = proposal.model_copy(update={"description": f"fix of {spec.kind.crash.commit[:7]}: {proposal.description}"})
    if proposal.usage is not None:
        ws.record("usage", f"{spec.iteration:04d}", proposal.usage.model_dump())
    return proposal


def prefetch_next(spec: Iteration, in_flight: Proposal, commit: str) -> None:
    """Start proposing the idea after this one, against this baseline, while this one trains (local mode)."""
    ws = spec.workspace()
    following = spec.model_copy(
        update={"iteration": spec.iteration + 1, "baseline_value": spec.baseline_value or 0.0, "kind": Idea()}
    )
    context = proposal_context(ws, following)
    pending = LedgerRow(commit=commit[:7], value=0.0, memory_gb=0.0, status="discard", description=in_flight.description)
    context = context.model_copy(
        update={"history": [*context.history, pending], "reasons": {**context.reasons, pending.commit: STILL_TRAINING}}
    )
    proposer = get_proposer(spec.loop.proposer, **spec.loop.proposer_options)
    if not proposer.prefetch:  # e.g. a coding agent: its work would be thrown away when the baseline moves
        return
    PREFETCHER.start(_prefetch_key(following), following.baseline_commit, lambda: proposer.propose(context))


def _prefetched(ws: Workspace, spec: Iteration) -> Proposal | None:
    if isinstance(spec.kind, Fix):  # a fix builds on the crash it fixes: never prefetched
        return None
    taken = PREFETCHER.take(_prefetch_key(spec))
    if taken is None:
        return None
    files = {path: ws.git.show(spec.parent_commit, path) or "" for path in ws.config.editable}
    proposal, wasted = usable(taken, files, spec.baseline_commit)
    if wasted is not None:  # a failed or stale prefetch still cost tokens
        ws.record("usage", f"{spec.iteration:04d}-prefetch", wasted.model_dump())
    return proposal


def _prefetch_key(spec: Iteration) -> PrefetchKey:
    options = spec.loop
    return PrefetchKey(options.loop_id, spec.iteration, options.proposer, json.dumps(options.proposer_options, sort_keys=True))


def proposal_context(ws: Workspace, spec: Iteration) -> ProposalContext:
    """What the proposer sees: files at the commit the edits apply to, the ledger with reasons, a crash to fix."""
    config = ws.config
    parent = spec.parent_commit
    return ProposalContext(
        iteration=spec.iteration,
        baseline_commit=spec.baseline_commit,
        editable_files={path: ws.git.show(parent, path) or "" for path in config.editable},
        program=ws.git.show(spec.baseline_commit, config.program) or "",
        history=ledger.read(ws.ledger_path, config.metric),
        metric=config.metric,
        direction=config.direction,
        seed=config.seed,
        readonly_interfaces={
            path: public_interface(ws.git.show(parent, path) or "") if path.endswith(".py") else "(not a Python file)"
            for path in config.readonly
        },
        reasons=ws.recorded("reasons"),
        crash=_crash_report(ws, spec),
        repo=str(ws.root),
        scratch_dir=str(ws.root / WORK_DIR / "worktrees" / f"agent-{spec.loop.slot}"),  # one per slot (--parallel)
        time_budget=spec.loop.time_budget,
        best_run=_best_run(ws),
    )


def _with_candidates_in_flight(ws: Workspace, spec: Iteration, context: ProposalContext) -> ProposalContext:
    """Deployed mode's window: the ideas already committed on this baseline and not yet logged are in the
    history as still training, so the proposer does not pick one of them again."""
    logged = {row.commit for row in context.history}
    prefix = ws.experiment_ref("").rstrip("/")
    pending = [
        LedgerRow(commit=sha[:7], value=0.0, memory_gb=0.0, status="discard", description=subject.removeprefix(EXPERIMENT_PREFIX))
        for sha, subject in ws.git.children_under(prefix, spec.baseline_commit)
        if sha[:7] not in logged
    ]
    if not pending:
        return context
    still = {row.commit: STILL_TRAINING for row in pending}
    return context.model_copy(update={"history": [*context.history, *pending], "reasons": {**context.reasons, **still}})


def _best_run(ws: Workspace) -> dict[str, str]:
    """Device, budget, steps and throughput of the current best's run, from its archived run.log."""
    rows = ledger.read(ws.ledger_path, ws.config.metric) if ws.ledger_path.exists() else []
    keeps = [(number, row) for number, row in enumerate(rows) if row.status == "keep"]
    if not keeps:
        return {}
    path = ws.log_path(keeps[-1][0], keeps[-1][1].commit)
    return run_facts(path.read_text(errors="replace")) if path.is_file() else {}


def _crash_report(ws: Workspace, spec: Iteration) -> CrashReport | None:
    if not isinstance(spec.kind, Fix):
        return None
    crash = spec.kind.crash
    tail = extract_metrics(ws.log_path(crash.iteration, crash.commit), ws.config.metric, ws.config.memory_metric).tail
    return CrashReport(
        commit=crash.commit,
        description=crash.description,
        reason=crash.reason,
        log_tail=redact(tail),  # the fix prompt never carries a known secret
        attempt=crash.attempt,
        max_attempts=MAX_FIX_ATTEMPTS,
    )
