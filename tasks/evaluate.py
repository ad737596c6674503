from __future__ import annotations

from autoresearch.tasks.spec import IterationSpec, iteration_cache_key, round_timeout
from prefect import task

from autoresearch import decision, noise
from autoresearch.models import Decision, Metrics, TrainResult
from autoresearch.rounds import Candidate, RoundBoard, round_decision


@task(name="evaluate", persist_result=True, cache_key_fn=iteration_cache_key)
def evaluate(
    spec: IterationSpec, commit: str, refused: str | None, result: TrainResult | None, metrics: Metrics | None
) -> Decision:
    """crash / better / equal / worse, then the simplicity criterion, with a one-line reason.

    In a --parallel round, the candidate then waits for its siblings' verdicts: only the best keep wins.
    """
    verdict = _verdict(spec, commit, refused, result, metrics)
    if not spec.in_round:
        return verdict
    assert spec.round_start is not None
    ws = spec.workspace()
    board = RoundBoard(ws.state_dir, spec.tag, spec.round_start, spec.round_size)
    own = Candidate(iteration=spec.iteration, commit=commit, verdict=verdict, value=metrics.value if metrics else None)
    board.publish(own)
    return round_decision(own, board.wait_for_all(round_timeout(spec)), ws.config.direction)


def _verdict(
    spec: IterationSpec, commit: str, refused: str | None, result: TrainResult | None, metrics: Metrics | None
) -> Decision:
    if refused:
        return decision.crash(f"edit refused: {refused}")
    assert result is not None and metrics is not None
    config = spec.workspace().config
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
    if spec.is_baseline:
        return decision.baseline(value)
    if spec.noise_repeat:
        return decision.noise_repeat(spec.noise_repeat, value, spec.baseline_value, config.direction)
    complexity = spec.workspace().git.complexity(spec.baseline_commit, commit, config.editable)
    small_gain, big_gain = noise.thresholds(config.small_gain, config.big_gain, spec.sigma)
    return decision.decide(
        new=value,
        baseline=spec.baseline_value,
        complexity=complexity,
        direction=config.direction,
        big_gain=big_gain,
        small_gain=small_gain,
        major_lines=config.major_lines,
    )
