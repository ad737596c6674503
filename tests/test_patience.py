"""Patient retries of a failing provider: backoff, Retry-After, one outage clock, giving up (pure, fake clocks)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from autoresearch.patience import (
    MAX_DELAY,
    Failure,
    Outages,
    Policy,
    ProviderUnavailable,
    backoff,
    parse_retry_after,
    patiently,
)

START = datetime(2026, 12, 1, 22, 0, 0, tzinfo=UTC)


class Clock:
    """Monotonic and wall time that only move when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def wall(self) -> datetime:
        return START + timedelta(seconds=self.now)


def policy(clock: Clock, patience: float, lines: list[str], outages: Outages | None = None) -> Policy:
    outages = outages or Outages(clock=lambda: clock.now, wall=clock.wall)
    return Policy("openai at http://x/v1", patience, lines.append, outages, clock.sleep, lambda: clock.now, clock.wall)


class Boom(Exception):
    def __init__(self, status: str = "HTTP 500", retry_after: float | None = None) -> None:
        super().__init__(status)
        self.failure = Failure("openai", "http://x/v1", status, retry_after)


def classify(exc: BaseException) -> Failure | None:
    return exc.failure if isinstance(exc, Boom) else None


def failing(times: int, result: str = "idea", error: Boom | None = None):
    calls = []

    def call() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise error or Boom()
        return result

    return call, calls


def test_backoff_doubles_up_to_a_cap_and_a_retry_after_wins():
    assert [backoff(n) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 16.0]
    assert backoff(30) == MAX_DELAY
    assert backoff(5, retry_after=3.0) == 3.0
    assert backoff(1, retry_after=600.0) == 600.0  # the server knows best, the patience still bounds it


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("7", 7.0), ("1.5", 1.5), ("-3", 0.0), ("Tue, 01 Dec 2026 22:00:30 GMT", 30.0), ("soon", None), (None, None), ("", None)],
)
def test_retry_after_reads_seconds_and_http_dates(header, seconds):
    assert parse_retry_after(header, now=START) == seconds


def test_failures_are_retried_with_one_warning_each_until_a_success():
    clock, lines = Clock(), []
    call, calls = failing(3)
    assert patiently(call, classify, policy(clock, 1800, lines)) == "idea"
    assert len(calls) == 4 and clock.slept == [2.0, 4.0, 8.0]
    assert lines == [
        "proposer failure 1: openai at http://x/v1: HTTP 500; next attempt at 22:00:02 UTC",
        "proposer failure 2: openai at http://x/v1: HTTP 500; next attempt at 22:00:06 UTC",
        "proposer failure 3: openai at http://x/v1: HTTP 500; next attempt at 22:00:14 UTC",
    ]


def test_retry_after_sets_the_wait():
    clock, lines = Clock(), []
    call, _ = failing(2, error=Boom("HTTP 429", retry_after=5.0))
    patiently(call, classify, policy(clock, 1800, lines))
    assert clock.slept == [5.0, 5.0] and "HTTP 429" in lines[0]


def test_the_patience_running_out_stops_with_what_failed_and_since_when():
    clock, lines = Clock(), []
    call, calls = failing(1000, error=Boom("HTTP 429"))
    with pytest.raises(ProviderUnavailable) as stopped:
        patiently(call, classify, policy(clock, 60, lines))
    assert clock.now <= 60 and sum(clock.slept) == clock.now
    assert len(calls) == len(lines) + 1  # each failure warned, except the last one: that one stops the loop
    message = str(stopped.value)
    assert "since 2026-12-01 22:00:00 UTC" in message and "openai at http://x/v1: HTTP 429" in message
    assert "proposer_patience_seconds (60 s)" in message


def test_other_errors_are_not_retried():
    clock, lines = Clock(), []

    def call() -> str:
        raise ValueError("a bug")

    with pytest.raises(ValueError):
        patiently(call, classify, policy(clock, 1800, lines))
    assert not lines and not clock.slept


def test_one_outage_clock_across_calls_until_a_success():
    clock, lines = Clock(), []
    outages = Outages(clock=lambda: clock.now, wall=clock.wall)
    never, _ = failing(1000)
    with pytest.raises(ProviderUnavailable):  # a prefetch spends the patience ...
        patiently(never, classify, policy(clock, 30, lines, outages))
    again, calls = failing(1000)
    with pytest.raises(ProviderUnavailable) as stopped:  # ... and the call after it goes on from there
        patiently(again, classify, policy(clock, 30, lines, outages))
    assert len(calls) == 1 and "since 2026-12-01 22:00:00" in str(stopped.value)
    works, _ = failing(0)
    patiently(works, classify, policy(clock, 30, lines, outages))  # a success ends the outage
    later, calls = failing(2)
    assert patiently(later, classify, policy(clock, 30, lines, outages)) == "idea" and len(calls) == 3


def test_the_stop_survives_pickling_with_what_failed():
    import pickle

    from autoresearch.models import Usage

    stop = ProviderUnavailable(Failure("openai", "http://x/v1", "HTTP 429"), START, 60, Usage(requests=1))
    again = pickle.loads(pickle.dumps(stop))
    assert str(again) == str(stop) and again.failure == stop.failure and again.usage == stop.usage
