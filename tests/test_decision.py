"""Keep or discard: every row of the decision table, and why a run counts as a crash."""

from __future__ import annotations

import math

import pytest

from autoresearch.decision import baseline, crash, crash_reason, decide, improvement

BIG, SMALL, MAJOR = 0.005, 0.001, 20
BASE = 0.997900  # a realistic 6-decimal ledger value


def new_value(d: float, direction: str, base: float = BASE) -> float:
    """The metric value that is better than `base` by `d` (worse when d < 0), as a 6-decimal ledger value."""
    return round(base - d if direction == "minimize" else base + d, 6)


def assert_one_line_reason(reason: str) -> None:
    assert reason.strip(), "a decision needs a reason"
    assert "\n" not in reason and "\r" not in reason, repr(reason)


directions = pytest.mark.parametrize("direction", ["minimize", "maximize"])

# (d, c, expected status, table row)
TABLE = [
    # d > big_gain: keep, whatever the complexity
    (0.0051, 0, "keep", "d > big_gain"),
    (0.0051, MAJOR, "keep", "d > big_gain"),
    (0.05, 500, "keep", "d > big_gain"),
    (0.05, -30, "keep", "d > big_gain"),
    # small_gain <= d <= big_gain and c < major_lines: keep (boundaries included)
    (BIG, MAJOR - 1, "keep", "small <= d <= big, c < major"),  # d exactly big_gain
    (SMALL, MAJOR - 1, "keep", "small <= d <= big, c < major"),  # d exactly small_gain
    (0.003, 0, "keep", "small <= d <= big, c < major"),
    (0.003, -5, "keep", "small <= d <= big, c < major"),
    # small_gain <= d <= big_gain and c >= major_lines: discard (not worth the code)
    (0.003, MAJOR, "discard", "small <= d <= big, c >= major"),  # c exactly major_lines
    (BIG, MAJOR, "discard", "small <= d <= big, c >= major"),  # d exactly big_gain
    (SMALL, MAJOR, "discard", "small <= d <= big, c >= major"),  # d exactly small_gain
    (0.003, 200, "discard", "small <= d <= big, c >= major"),
    # |d| < small_gain and c < 0: keep (simplification win)
    (0.0, -1, "keep", "|d| < small, c < 0"),
    (0.0009, -10, "keep", "|d| < small, c < 0"),
    (-0.0009, -1, "keep", "|d| < small, c < 0"),
    # |d| < small_gain and c >= 0: discard
    (0.0, 0, "discard", "|d| < small, c >= 0"),  # c exactly 0
    (0.0009, 0, "discard", "|d| < small, c >= 0"),
    (-0.0009, 0, "discard", "|d| < small, c >= 0"),
    (0.0005, 3, "discard", "|d| < small, c >= 0"),
    # d <= -small_gain: discard, whatever the complexity
    (-SMALL, -10, "discard", "d <= -small"),  # d exactly -small_gain: no simplification win
    (-SMALL, 0, "discard", "d <= -small"),
    (-0.02, -50, "discard", "d <= -small"),
    (-0.5, 100, "discard", "d <= -small"),
]


@directions
@pytest.mark.parametrize(("d", "c", "expected", "row"), TABLE, ids=[f"{r[3]}: d={r[0]} c={r[1]}" for r in TABLE])
def test_decision_table(direction: str, d: float, c: int, expected: str, row: str):
    new = new_value(d, direction)
    decision = decide(new=new, baseline=BASE, complexity=c, direction=direction)
    assert decision.status == expected, f"{row}: d={d} c={c} {direction}: {decision}"
    assert decision.improvement == pytest.approx(d, abs=1e-9)
    assert decision.complexity == c
    assert_one_line_reason(decision.reason)


@directions
def test_improvement_sign_follows_direction(direction: str):
    better = new_value(0.01, direction)
    worse = new_value(-0.01, direction)
    assert improvement(better, BASE, direction) == pytest.approx(0.01)
    assert improvement(worse, BASE, direction) == pytest.approx(-0.01)
    assert improvement(BASE, BASE, direction) == 0.0


@directions
@pytest.mark.parametrize("base", [0.997900, 1.0, 3.141593, 0.000100, 12.5])
def test_exact_boundaries_survive_float_arithmetic(direction: str, base: float):
    """6-decimal ledger values exactly big_gain / small_gain apart hit the boundary rows, not their neighbours."""
    at_big = decide(new=new_value(BIG, direction, base), baseline=base, complexity=0, direction=direction)
    assert at_big.status == "keep" and at_big.improvement == BIG  # small <= d <= big, c < major
    at_big_major = decide(new=new_value(BIG, direction, base), baseline=base, complexity=MAJOR, direction=direction)
    assert at_big_major.status == "discard"  # d == big_gain is NOT > big_gain
    at_small = decide(new=new_value(SMALL, direction, base), baseline=base, complexity=0, direction=direction)
    assert at_small.status == "keep" and at_small.improvement == SMALL
    at_minus_small = decide(new=new_value(-SMALL, direction, base), baseline=base, complexity=-5, direction=direction)
    assert at_minus_small.status == "discard" and at_minus_small.improvement == -SMALL


@directions
def test_custom_thresholds_are_used(direction: str):
    kwargs = dict(direction=direction, big_gain=0.1, small_gain=0.02, major_lines=5)
    assert decide(new=new_value(0.11, direction), baseline=BASE, complexity=100, **kwargs).status == "keep"
    assert decide(new=new_value(0.05, direction), baseline=BASE, complexity=4, **kwargs).status == "keep"
    assert decide(new=new_value(0.05, direction), baseline=BASE, complexity=5, **kwargs).status == "discard"
    # with the defaults this would be a keep (d > big_gain); with small_gain 0.02 it is noise
    assert decide(new=new_value(0.01, direction), baseline=BASE, complexity=0, **kwargs).status == "discard"
    assert decide(new=new_value(0.01, direction), baseline=BASE, complexity=-1, **kwargs).status == "keep"
    assert decide(new=new_value(-0.02, direction), baseline=BASE, complexity=-1, **kwargs).status == "discard"


def test_the_same_value_is_better_or_worse_depending_on_direction():
    lower = round(BASE - 0.01, 6)
    assert decide(new=lower, baseline=BASE, complexity=0, direction="minimize").status == "keep"
    assert decide(new=lower, baseline=BASE, complexity=0, direction="maximize").status == "discard"


def test_reasons_differ_between_rows():
    """The reason explains the row: a keep for a big gain does not read like a simplification keep."""
    reasons = {
        decide(new=new_value(d, "minimize"), baseline=BASE, complexity=c).reason
        for d, c in [(0.05, 0), (0.003, 0), (0.003, 50), (0.0, -3), (0.0, 3), (-0.05, 0)]
    }
    assert len(reasons) == 6
    for reason in reasons:
        assert_one_line_reason(reason)


def test_baseline_and_crash_decisions():
    first = baseline(0.9979)
    assert first.status == "keep"
    assert "0.997900" in first.reason
    assert_one_line_reason(first.reason)
    crashed = crash("exit code 1")
    assert crashed.status == "crash"
    assert crashed.reason == "exit code 1"


# --- crash_reason ------------------------------------------------------------------------------------

GOOD = dict(exit_code=0, timed_out=False, timeout=600.0, failed=False, value=0.9979, metric="val_bpb")


def test_a_good_run_is_not_a_crash():
    assert crash_reason(**GOOD) is None


def test_a_zero_metric_is_a_usable_value():
    assert crash_reason(**{**GOOD, "value": 0.0}) is None
    assert crash_reason(**{**GOOD, "value": -1.5}) is None


def test_timeout_is_a_crash():
    reason = crash_reason(**{**GOOD, "exit_code": None, "timed_out": True, "value": None})
    assert reason is not None and "timed out" in reason and "600" in reason
    assert_one_line_reason(reason)


def test_timeout_wins_over_a_metric_that_was_printed():
    reason = crash_reason(**{**GOOD, "exit_code": None, "timed_out": True, "timeout": 5.0})
    assert reason is not None and "timed out" in reason and "5" in reason


def test_exit_127_says_command_not_found():
    reason = crash_reason(**{**GOOD, "exit_code": 127, "value": None})
    assert reason is not None and "127" in reason and "command not found" in reason
    assert_one_line_reason(reason)


@pytest.mark.parametrize("code", [1, 2, 3, 137, 255, -9])
def test_other_nonzero_exit_is_a_crash_naming_the_code(code: int):
    reason = crash_reason(**{**GOOD, "exit_code": code})
    assert reason is not None and str(code) in reason
    assert "command not found" not in reason
    assert_one_line_reason(reason)


def test_fail_line_is_a_crash_even_with_exit_zero_and_a_metric():
    reason = crash_reason(**{**GOOD, "failed": True})
    assert reason is not None and "FAIL" in reason
    assert_one_line_reason(reason)


@pytest.mark.parametrize("metric", ["val_bpb", "val_loss"])
def test_missing_metric_is_a_crash_naming_the_metric(metric: str):
    reason = crash_reason(**{**GOOD, "value": None, "metric": metric})
    assert reason is not None and metric in reason
    assert_one_line_reason(reason)


@pytest.mark.parametrize(("value", "shown"), [(math.nan, "nan"), (math.inf, "inf"), (-math.inf, "-inf")])
def test_non_finite_metric_is_a_crash(value: float, shown: str):
    reason = crash_reason(**{**GOOD, "value": value})
    assert reason is not None and shown in reason and "val_bpb" in reason
    assert_one_line_reason(reason)
