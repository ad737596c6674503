from __future__ import annotations

from autoresearch.tasks.spec import iteration_cache_key
from prefect import task

from autoresearch import decision
from autoresearch.iteration import Iteration
from autoresearch.models import Decision, Metrics, TrainResult


@task(name="evaluate", persist_result=True, cache_key_fn=iteration_cache_key)
def evaluate(spec: Iteration, commit: str, refused: str | None, result: TrainResult | None, metrics: Metrics | None) -> Decision:
    """crash / better / equal / worse, then the simplicity criterion, with a one-line reason.

    A candidate of deployed mode's window is judged here against the baseline it started from; the loop then
    turns its keep into a discard if another keep moved the branch meanwhile (rounds.still_applies).
    """
    if refused:
        return decision.crash(f"edit refused: {refused}")
    assert result is not None and metrics is not None
    ws = spec.workspace()
    config = ws.config
    reason = decision.crash_reason(
        exit_code=result.exit_code,
        timed_out=result.timed_out,
        timeout=config.timeout_seconds,
        failed=metrics.failed,
        value=metrics.value,
        metric=config.metric,
    )
    if reason:
        return decision.crash(reason)
    value = round(metrics.value, 6)
    if spec.baseline_value is None:
        return decision.baseline(value)
    if spec.repeat:
        return decision.noise_repeat(spec.repeat, value, spec.baseline_value, config.direction)
    complexity = ws.git.complexity(spec.baseline_commit, commit, config.editable)
    return decision.judge(value, spec.baseline_value, complexity, config, spec.sigma)
