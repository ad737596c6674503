"""Noise-aware keeps: repeats of the baseline at setup, sigma, the effective threshold.

With `noise_repeats = k`, the unmodified baseline is trained k more times right after the baseline run.
Each repeat is an empty experiment commit (same tree as the baseline, so every row still names its own
commit) logged as `discard` with the description `baseline (noise repeat i)`: it is a real training
run, so it gets a row, but it is not a keep and never moves the branch. Sigma is the sample standard
deviation of the baseline and its repeats that produced a metric; keeps then need an improvement of
at least max(small_gain, 2 sigma).
"""

from __future__ import annotations

import re
import statistics

from autoresearch.models import LedgerRow

_REPEAT = re.compile(r"^baseline \(noise repeat (\d+)\)$")


def repeat_description(number: int) -> str:
    return f"baseline (noise repeat {number})"


def repeat_number(description: str) -> int | None:
    match = _REPEAT.match(description.strip())
    return int(match[1]) if match else None


def next_repeat(rows: list[LedgerRow], repeats: int) -> int | None:
    """The number of the next noise repeat to run, or None. Repeats only follow a kept baseline directly."""
    if not rows or rows[0].status != "keep" or rows[0].description != "baseline":
        return None
    done = [repeat_number(row.description) for row in rows[1:]]
    if None in done:  # ideas already ran: repeats are a setup step, never inserted later
        return None
    return len(done) + 1 if len(done) < repeats else None


def sigma(rows: list[LedgerRow]) -> float | None:
    """Sample standard deviation of the baseline and its repeats that produced a metric (None below 2)."""
    if not rows or rows[0].status != "keep":
        return None
    values = [rows[0].value] + [
        row.value for row in rows[1:] if repeat_number(row.description) is not None and row.status != "crash"
    ]
    return round(statistics.stdev(values), 9) if len(values) >= 2 else None


def thresholds(small_gain: float, big_gain: float, sigma_value: float | None) -> tuple[float, float]:
    """(small_gain, big_gain) in use: small_gain becomes max(small_gain, 2 sigma), and big_gain is never below
    it (else a gain within the noise would still pass the `d > big_gain` row of the table)."""
    small = max(small_gain, 2 * sigma_value) if sigma_value else small_gain
    return small, max(big_gain, small)
