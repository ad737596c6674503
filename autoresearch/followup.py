"""What the research loop runs next after an iteration: a noise repeat, a crash fix, or a new idea.

Kept out of the flow so the flow's loop stays a few lines: the rules live here.
- After the kept baseline: `noise_repeats` repeats of it (noise.py), then sigma goes into every spec.
- After a crash that trained (it has a run.log), a proposer with `can_fix` gets up to MAX_FIX_ATTEMPTS
  fix attempts, each building on the commit that crashed last; the decision's baseline stays the same.
- Otherwise: a new idea from the (possibly new) baseline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from autoresearch import ledger, noise
from autoresearch.proposers import get_proposer
from autoresearch.tasks.hypothesize import EXPERIMENT_PREFIX
from autoresearch.tasks.spec import MAX_FIX_ATTEMPTS, CrashInfo, IterationSpec
from autoresearch.workspace import Workspace

if TYPE_CHECKING:
    from autoresearch.flows.experiment_iteration import IterationOutcome


def first_spec(ws: Workspace, spec: IterationSpec) -> IterationSpec:
    """The loop's first spec with sigma from the ledger, and a noise repeat if one is due (or in flight)."""
    rows = ledger.read(ws.ledger_path, ws.config.metric)
    spec = spec.model_copy(update={"sigma": _sigma(ws, rows)})
    if spec.resume_commit:
        subject = ws.git.message(spec.resume_commit).splitlines()[0].removeprefix(EXPERIMENT_PREFIX)
        return spec.model_copy(update={"noise_repeat": noise.repeat_number(subject)})
    if not spec.is_baseline:
        return spec.model_copy(update={"noise_repeat": noise.next_repeat(rows, ws.config.noise_repeats)})
    return spec


def next_spec(ws: Workspace, spec: IterationSpec, outcome: IterationOutcome) -> IterationSpec:
    rows = ledger.read(ws.ledger_path, ws.config.metric)
    following = spec.model_copy(
        update={
            "iteration": spec.iteration + 1,
            "baseline_commit": outcome.baseline_commit,
            "baseline_value": outcome.baseline_value,
            "resume_commit": None,
            "fix_of": None,
            "noise_repeat": noise.next_repeat(rows, ws.config.noise_repeats),
            "sigma": _sigma(ws, rows),
        }
    )
    if following.noise_repeat is None:
        return following.model_copy(update={"fix_of": _fix_of(ws, spec, outcome)})
    return following


def _fix_of(ws: Workspace, spec: IterationSpec, outcome: IterationOutcome) -> CrashInfo | None:
    if outcome.row.status != "crash" or spec.is_baseline or spec.noise_repeat:
        return None
    attempt = spec.fix_of.attempt + 1 if spec.fix_of else 1
    commit = ws.git.resolve(outcome.row.commit)
    if attempt > MAX_FIX_ATTEMPTS or commit is None or not ws.log_path(spec.iteration, commit).exists():
        return None  # given up, or never trained (a refused edit has no run.log to fix from)
    if not get_proposer(spec.proposer, **spec.proposer_options).can_fix:
        return None
    idea = spec.fix_of.description if spec.fix_of else outcome.row.description
    return CrashInfo(commit=commit, iteration=spec.iteration, description=idea, reason=outcome.reason, attempt=attempt)


def _sigma(ws: Workspace, rows: list) -> float | None:
    """Sigma from the ledger (recomputed, so it survives any resume), also saved in the loop state."""
    value = noise.sigma(rows)
    if value is not None and ws.recorded("noise").get("sigma") != value:
        ws.record("noise", "sigma", value)
    return value
