"""Keep or discard: the protocol's decision table, as pure functions (see docs/protocol.md)."""

from __future__ import annotations

from typing import Literal

from autoresearch import noise
from autoresearch.config import ExperimentConfig
from autoresearch.models import Decision


def improvement(new: float, baseline: float, direction: Literal["minimize", "maximize"]) -> float:
    """Positive when `new` is better. Rounded so 6-decimal ledger values compare exactly."""
    return round(baseline - new if direction == "minimize" else new - baseline, 9)


def decide(
    *,
    new: float,
    baseline: float,
    complexity: int,
    direction: Literal["minimize", "maximize"] = "minimize",
    big_gain: float = 0.005,
    small_gain: float = 0.001,
    major_lines: int = 20,
) -> Decision:
    """Decide on a run that produced a metric. Crashes never get here (see `crash`)."""
    d = improvement(new, baseline, direction)
    lines = f"{complexity:+d} lines"
    if d > big_gain:
        status, reason = "keep", f"improved by {d:.6f} (> big_gain {big_gain:g})"
    elif d >= small_gain and complexity < major_lines:
        status, reason = "keep", f"improved by {d:.6f} at {lines} (< {major_lines} lines)"
    elif d >= small_gain:
        status, reason = "discard", f"improved by only {d:.6f} at {lines}: not worth the code"
    elif d > -small_gain and complexity < 0:
        status, reason = "keep", f"simplification: {lines} for a change of {d:+.6f} (within {small_gain:g})"
    elif d > -small_gain:
        status, reason = "discard", f"no real change ({d:+.6f}, within {small_gain:g}) at {lines}"
    else:
        status, reason = "discard", f"worse by {-d:.6f}"
    return Decision(status=status, reason=reason, improvement=d, complexity=complexity)


def judge(new: float, baseline: float, complexity: int, config: ExperimentConfig, sigma: float | None) -> Decision:
    """The decision table with the experiment's thresholds, raised to 2 sigma where the noise is measured."""
    small_gain, big_gain = noise.thresholds(config.small_gain, config.big_gain, sigma)
    return decide(
        new=new,
        baseline=baseline,
        complexity=complexity,
        direction=config.direction,
        big_gain=big_gain,
        small_gain=small_gain,
        major_lines=config.major_lines,
    )


def crash(reason: str) -> Decision:
    return Decision(status="crash", reason=reason)


def baseline(value: float) -> Decision:
    return Decision(status="keep", reason=f"baseline: {value:.6f}", improvement=0.0, complexity=0)


def crash_reason(
    *, exit_code: int | None, timed_out: bool, timeout: float, failed: bool, value: float | None, metric: str
) -> str | None:
    """Why a training run counts as a crash, or None if it produced a usable metric."""
    if timed_out:
        return f"timed out after {timeout:g} s (process group killed)"
    if exit_code == 127:
        return "exit code 127: command not found (check `command` in autoresearch.toml)"
    if exit_code:
        return f"exit code {exit_code}"
    if failed:
        return "the run printed FAIL"
    if value is None:
        return f"no `{metric}:` line in run.log"
    if value != value or value in (float("inf"), float("-inf")):
        return f"{metric} is {value}"
    return None


def noise_repeat(number: int, value: float, baseline: float, direction: Literal["minimize", "maximize"]) -> Decision:
    """A repeat of the unmodified baseline: a real run with its own row, never a keep (see noise.py)."""
    d = improvement(value, baseline, direction)
    return Decision(
        status="discard", reason=f"noise repeat {number} of the baseline ({baseline:.6f}): {d:+.6f}", improvement=d, complexity=0
    )


def confirm(first: Decision, second: Decision | None, values: tuple[float, float | None], second_crash: str | None) -> Decision:
    """`--confirm`: a would-be keep was trained again (same commit); keep only if both runs pass.

    `first` and `second` are the decision table's verdicts on each run's value against the same baseline.
    The row records the mean of the two values (the first alone if the second run crashed).
    """
    one, two = values
    if second_crash or second is None or two is None:
        return Decision(
            status="discard",
            reason=f"not confirmed: the second run crashed ({second_crash})",
            improvement=first.improvement,
            complexity=first.complexity,
        )
    runs = f"runs {one:.6f} and {two:.6f}"
    if second.status == "keep":
        return Decision(
            status="keep",
            reason=f"confirmed ({runs}): {first.reason}",
            improvement=first.improvement,
            complexity=first.complexity,
        )
    return Decision(
        status="discard",
        reason=f"not confirmed ({runs}): second run {second.reason}",
        improvement=second.improvement,
        complexity=second.complexity,
    )
