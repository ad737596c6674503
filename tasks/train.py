from __future__ import annotations

from pathlib import Path

from autoresearch.tasks.spec import iteration_cache_key
from prefect import task

from autoresearch.gpu_pool import train_on_pool
from autoresearch.iteration import Iteration
from autoresearch.models import TrainResult
from autoresearch.secrets import redact
from autoresearch.training_job import TrainRequest, run_training_job


@task(name="train", persist_result=True, cache_key_fn=iteration_cache_key)
def train(spec: Iteration, commit: str, run: int = 0) -> TrainResult:
    """Run the experiment command at `commit` in a slot's worktree; all output to run.log; hard timeout.

    Local mode runs it in this process; deployed mode as a `train-on-gpu` run on the gpu pool. Either
    way the log ends up under .autoresearch/logs/<tag>/ (run.log in the repo root links to the latest).
    `run` > 0: a repeat of the same commit (--confirm).
    """
    ws = spec.workspace()
    config = ws.config
    ws.verify_readonly(ws.root)
    request = TrainRequest(
        repo=str(ws.root),
        remote=spec.loop.remote,
        tag=spec.loop.tag,
        iteration=spec.iteration,
        commit=commit,
        command=config.command,
        timeout_seconds=config.timeout_seconds,
        env={"AUTORESEARCH_TIME_BUDGET": str(spec.loop.time_budget)} if spec.loop.time_budget else {},
        env_drop=config.env_drop,
        readonly=ws.recorded_checksums(),
        run=run,
    )
    if spec.loop.deployed:
        name = f"{spec.loop.tag} · iter {spec.iteration:04d} · train {commit[:7]}"
        report = train_on_pool(request, ws.git, name, tags=[spec.loop.tag])
    else:
        report = run_training_job(request, spec.loop.slot, record=ws.training_record)
    log_path = Path(report.log_path)
    if report.log_text is not None:  # the log stayed on the worker's machine: keep the tail that came back
        log_path = ws.log_path(spec.iteration, commit, run)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text(redact(report.log_text))
    return TrainResult(
        commit=commit, log_path=log_path, exit_code=report.exit_code, timed_out=report.timed_out, seconds=report.seconds
    )
