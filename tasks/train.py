from __future__ import annotations

import os
import sys
from pathlib import Path

from prefect import task

from autoresearch.models import TrainResult
from autoresearch.progress import training_progress
from autoresearch.runner import run_command
from autoresearch.tasks.spec import IterationSpec, iteration_cache_key

RUN_LOG = "run.log"


@task(name="train", persist_result=True, cache_key_fn=iteration_cache_key)
def train(spec: IterationSpec, commit: str) -> TrainResult:
    """Run the experiment command at `commit` in the slot's worktree; all output to run.log; hard timeout.

    The log is then archived under .autoresearch/logs/<tag>/ (run.log in the repo root links to the
    live one), so every row's log stays readable.
    """
    ws = spec.workspace()
    config = ws.config
    ws.verify_readonly(ws.root)
    checkout = ws.worktree(spec.slot)
    ws.git.checkout_worktree(checkout, commit)
    ws.verify_readonly(checkout)
    live_log = checkout / RUN_LOG
    _link_run_log(ws.root / RUN_LOG, live_log)
    env = {"AUTORESEARCH_TIME_BUDGET": str(spec.time_budget)} if spec.time_budget else {}
    with training_progress(live_log, spec.time_budget, spec.tag, spec.iteration, commit):  # progress artifact in the UI
        outcome = run_command(
            config.command_line(sys.executable),
            cwd=checkout,
            log_path=live_log,
            timeout=config.timeout_seconds,
            env=env,
            record=ws.training_record,
        )
    archived = ws.log_path(spec.iteration, commit)
    archived.parent.mkdir(parents=True, exist_ok=True)
    os.replace(live_log, archived)
    _link_run_log(ws.root / RUN_LOG, archived)
    return TrainResult(
        commit=commit, log_path=archived, exit_code=outcome.exit_code, timed_out=outcome.timed_out, seconds=outcome.seconds
    )


def _link_run_log(link: Path, target: Path) -> None:
    """`tail -f run.log` in the repo root keeps working, as in karpathy's setup (never over a real file)."""
    if link.is_symlink():
        link.unlink()
    if not link.exists():
        link.symlink_to(target)
