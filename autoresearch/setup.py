"""Setup of a fresh loop and resume of an existing one: reconcile git, results.tsv and the loop state.

State lives in results.tsv (finished runs), git (branch tip = last keep) and Prefect (persisted task
results). These functions bring git and the ledger into agreement before any iteration runs, or stop
with a message that says what to do. They never destroy the user's work.
"""

from __future__ import annotations

from pydantic import BaseModel

from autoresearch import ledger
from autoresearch.errors import UserError
from autoresearch.gitops import TRAILER_ITERATION, TRAILER_TAG, short
from autoresearch.models import LedgerRow
from autoresearch.runner import kill_recorded
from autoresearch.workspace import EXCLUDES, Workspace


class LoopPlan(BaseModel):
    """Where the loop stands after setup or resume."""

    tag: str
    loop_id: str
    resumed: bool
    rows: int  # rows in results.tsv = the next iteration's number
    baseline_commit: str  # the last keep (or the start commit while the baseline has not run)
    baseline_value: float | None  # None until the baseline has run
    in_flight_commit: str | None = None  # an experiment committed but never logged: finish it
    notes: list[str] = []


def check_files(ws: Workspace) -> None:
    """Editable and read-only files exist and are tracked; a missing one is a one-line error."""
    for kind, key, paths in (("editable", "editable", ws.config.editable), ("read-only", "readonly", ws.config.readonly)):
        for path in paths:
            if not (ws.root / path).is_file():
                raise UserError(f"{kind} file {path} is missing in {ws.root}; restore it or set `{key}` in autoresearch.toml")
            if not ws.git.is_tracked(path):
                raise UserError(f"{kind} file {path} is not committed; `git add {path} && git commit` it first")


def check_data(ws: Workspace) -> None:
    path = ws.config.data_path()
    if not path.is_dir() or not any(path.iterdir()):
        command = ws.config.prepare_command.replace("{repo}", str(ws.root))
        raise UserError(f"data is not prepared ({path} is missing or empty); run `{command}` first")


def check_clean(ws: Workspace) -> None:
    dirty = ws.git.dirty(ws.config.editable + ws.config.readonly)
    if dirty:
        raise UserError(
            f"uncommitted changes in {', '.join(dirty)}; commit or stash them first (the loop never overwrites your work)"
        )


def preflight(ws: Workspace) -> None:
    """Checks that need no Prefect: run them before anything starts."""
    if not ws.git.has_commits():
        raise UserError(f"{ws.root} has no commits yet; commit train.py and prepare.py first")
    ws.config  # noqa: B018  (validates autoresearch.toml before anything else)
    check_files(ws)
    branch, has_ledger = ws.git.branch_exists(ws.branch), ws.ledger_path.exists()
    if branch and not has_ledger:
        raise UserError(
            f"branch {ws.branch} exists but {ws.ledger_path.name} does not; restore results.tsv to resume, "
            f"or delete the branch (git branch -D {ws.branch}), or pass another --tag"
        )
    if has_ledger and not branch:
        owners = ws.other_tags()
        hint = f" (it belongs to --tag {owners[-1]})" if owners else ""
        raise UserError(
            f"{ws.ledger_path.name} exists but branch {ws.branch} does not{hint}; "
            f"move results.tsv away to start tag {ws.tag}, or resume with the tag it belongs to"
        )
    if has_ledger:
        ledger.read(ws.ledger_path, ws.config.metric, torn_ok=True)
    else:
        check_clean(ws)
    check_data(ws)


def setup_or_resume(ws: Workspace) -> LoopPlan:
    """Create the loop (fresh tag) or reconcile an existing one. Caller holds the loop lock."""
    preflight(ws)
    notes: list[str] = []
    killed = kill_recorded(ws.training_record)
    if killed:
        notes.append(f"killed the training process group {killed} left by an earlier loop")
    if not ws.git.branch_exists(ws.branch):
        return _fresh(ws, notes)
    return _resume(ws, notes)


def _fresh(ws: Workspace, notes: list[str]) -> LoopPlan:
    start = ws.git.head()
    ws.git.exclude(EXCLUDES)
    ws.git.create_branch(ws.branch, start)
    ws.git.checkout(ws.branch)
    ledger.create(ws.ledger_path, ws.config.metric)
    state = ws.new_state()
    ws.save_state(state)
    notes.append(f"created branch {ws.branch} at {short(start)} and {ws.ledger_path.name}")
    return LoopPlan(
        tag=ws.tag, loop_id=state["loop_id"], resumed=False, rows=0, baseline_commit=start, baseline_value=None, notes=notes
    )


def _resume(ws: Workspace, notes: list[str]) -> LoopPlan:
    repaired = ledger.repair_torn_tail(ws.ledger_path, ws.config.metric)
    if repaired:
        notes.append(f"results.tsv: {repaired}")
    rows = ledger.read(ws.ledger_path, ws.config.metric)
    state = ws.load_state()
    if state is None:  # a branch and ledger made by hand or by karpathy's agent: adopt them
        state = ws.new_state()
        ws.save_state(state)
        notes.append("adopted an existing branch and results.tsv")
    ws.git.exclude(EXCLUDES)
    tip = ws.git.resolve(ws.branch)
    keep = ledger.last_keep(rows)
    baseline = _resolve_row_commit(ws, keep, tip) if keep else _start_commit(ws, rows, tip)
    _restore_working_tree(ws, tip, baseline, notes)
    in_flight = None
    if tip != baseline:
        in_flight = _reconcile_tip(ws, rows, tip, baseline, notes)
    return LoopPlan(
        tag=ws.tag,
        loop_id=state["loop_id"],
        resumed=True,
        rows=len(rows),
        baseline_commit=baseline,
        baseline_value=keep.value if keep else None,
        in_flight_commit=in_flight,
        notes=notes,
    )


def _resolve_row_commit(ws: Workspace, row: LedgerRow, tip: str) -> str:
    if row.commit == "baseline":  # karpathy's agent writes a literal `baseline`
        return tip
    full = ws.git.resolve(row.commit)
    if full is None:
        raise UserError(f"results.tsv names commit {row.commit}, which this repo does not have; is this the right repo?")
    return full


def _start_commit(ws: Workspace, rows: list[LedgerRow], tip: str) -> str:
    """No keep yet (the baseline has not run or crashed): the baseline is where the branch started."""
    if rows:
        full = ws.git.resolve(rows[0].commit)
        if full:
            return full
    return tip


def _restore_working_tree(ws: Workspace, tip: str, baseline: str, notes: list[str]) -> None:
    """Uncommitted changes in the experiment's files: reset them only if they are the loop's own."""
    if ws.git.current_branch() != ws.branch:
        check_clean(ws)
        ws.git.checkout(ws.branch)
        notes.append(f"checked out {ws.branch}")
        return
    dirty = ws.git.dirty(ws.config.editable + ws.config.readonly)
    if not dirty:
        return
    ours = all(
        (ws.root / path).exists() and (ws.root / path).read_text(errors="replace") in _versions(ws, path, tip, baseline)
        for path in dirty
    )
    if not ours:
        raise UserError(
            f"uncommitted changes in {', '.join(dirty)} that the loop did not make; commit or stash them, then run again"
        )
    ws.git.reset_hard(tip)
    notes.append(f"restored {', '.join(dirty)} left half-written by an interrupted loop")


def _versions(ws: Workspace, path: str, *commits: str) -> set[str]:
    versions = {ws.git.show(commit, path) for commit in commits}
    versions.update(ws.git.show(ws.git.parent(commit) or commit, path) for commit in commits)
    return {v for v in versions if v is not None}


def _reconcile_tip(ws: Workspace, rows: list[LedgerRow], tip: str, baseline: str, notes: list[str]) -> str | None:
    """The branch tip is not the last keep. Returns the experiment commit still in flight, if any."""
    logged = {row.commit[:7]: row for row in rows}
    row = logged.get(short(tip))
    if row is not None and row.status != "keep":
        ws.git.reset_hard(baseline)
        notes.append(f"applied the reset of {short(tip)} ({row.status}) to {short(baseline)}")
        return None
    trailers = ws.git.trailers(tip)
    parent = ws.git.parent(tip) or ""
    fixes_a_crash = parent[:7] in logged and logged[parent[:7]].status == "crash"  # a crash-fix attempt in flight
    if (
        row is None
        and (parent == baseline or fixes_a_crash)
        and trailers.get(TRAILER_TAG) == ws.tag
        and trailers.get(TRAILER_ITERATION) == str(len(rows))
    ):
        notes.append(f"experiment {short(tip)} (iteration {len(rows)}) was in flight: finishing it")
        return tip
    raise UserError(
        f"branch {ws.branch} is at {short(tip)}, which is neither the last kept commit {short(baseline)} nor an "
        f"experiment in flight; move it back with `git reset --hard {short(baseline)}` on that branch, then run again"
    )


def reset_to_last_keep(ws: Workspace) -> str | None:
    """After an interrupt: put the branch back at the last keep (the unfinished commit stays under refs/)."""
    if ws.git.current_branch() != ws.branch or not ws.ledger_path.exists():
        return None
    rows = ledger.read(ws.ledger_path, ws.config.metric)
    keep = ledger.last_keep(rows)
    tip = ws.git.resolve(ws.branch)
    target = _resolve_row_commit(ws, keep, tip) if keep else _start_commit(ws, rows, tip)
    if target and tip != target:
        ws.git.reset_hard(target)
        return target
    return None
