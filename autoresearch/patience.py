"""Riding out provider outages: retry a proposer call with capped exponential backoff, within a patience.

A failure of the model provider (HTTP 5xx, 429, a refused or reset connection, a timeout, an invalid
reply) or of an agent CLI is not the end of the night: the call is tried again after a delay that doubles
up to MAX_DELAY (or the server's Retry-After), with one WARNING line per failure. An outage is measured
from its first failure, across calls (a prefetch in the background and the call after it share one
clock), and ends at the first success. When it has gone on for longer than the patience, the loop stops
with ProviderUnavailable: the CLI prints one line and exits with code 3, and the same command resumes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TypeVar

from autoresearch.errors import UserError
from autoresearch.models import Usage

BASE_DELAY = 2.0  # seconds before the first retry; doubles each time
MAX_DELAY = 120.0  # the cap of one wait (a Retry-After above it is still honoured)
EXIT_CODE = 3  # `autoresearch run` exits with it when the patience ran out
DEFAULT_TIMEOUT = 180.0  # seconds for one model request (config key proposer_timeout_seconds)
DEFAULT_PATIENCE = 1800.0  # seconds of failures before the loop stops (config key proposer_patience_seconds)

T = TypeVar("T")


@dataclass(frozen=True)
class Failure:
    """One failed call: who failed, where, how, and how long the server asked us to wait."""

    provider: str  # "openai", "anthropic", "agent", ...
    where: str  # the base URL, or the agent's command
    status: str  # "HTTP 500", "connection refused", "timed out after 180 s", "exit code 1", ...
    retry_after: float | None = None

    def line(self) -> str:
        return f"{self.provider} at {self.where}: {self.status}"


class ProviderUnavailable(UserError):
    """The proposer kept failing for longer than the patience: the loop stops, to be resumed later."""

    def __init__(self, failure: Failure, since: datetime, patience: float, usage: Usage | None = None) -> None:
        self.failure, self.since, self.patience, self.usage = failure, since, patience, usage
        super().__init__(
            f"the proposer has been failing since {since:%Y-%m-%d %H:%M:%S} UTC ({failure.line()}), longer than "
            f"proposer_patience_seconds ({patience:g} s); the branch is at the last keep and nothing is lost"
        )

    def __reduce__(self) -> tuple:  # Prefect stores a failed task's exception: pickle must rebuild it
        return type(self), (self.failure, self.since, self.patience, self.usage)


class Cancelled(Exception):
    """A background call was cancelled while it waited to retry (the loop ended)."""


class Outages:
    """When the current outage of each proposer began (monotonic and wall clock); cleared by a success."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, wall: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self._clock, self._wall = clock, wall
        self._since: dict[str, tuple[float, datetime]] = {}
        self._lock = threading.Lock()

    def failed(self, key: str) -> tuple[float, datetime]:
        with self._lock:
            return self._since.setdefault(key, (self._clock(), self._wall()))

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._since.pop(key, None)


OUTAGES = Outages()


def proposer_settings(config: object) -> dict[str, float]:
    """The config keys every proposer gets as options (an ExperimentConfig, or anything with these fields)."""
    return {
        "proposer_timeout_seconds": float(getattr(config, "proposer_timeout_seconds", DEFAULT_TIMEOUT)),
        "proposer_patience_seconds": float(getattr(config, "proposer_patience_seconds", DEFAULT_PATIENCE)),
    }


def backoff(attempt: int, retry_after: float | None = None) -> float:
    """Seconds to wait before retry number `attempt` (1, 2, ...): the server's Retry-After, else 2, 4, 8 ... 120."""
    if retry_after is not None and retry_after >= 0:
        return retry_after
    return min(MAX_DELAY, BASE_DELAY * 2 ** (max(attempt, 1) - 1))


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """A Retry-After header (seconds, or an HTTP date) as seconds from now; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def warning_line(failure: Failure, attempt: int, next_at: datetime) -> str:
    return f"proposer failure {attempt}: {failure.line()}; next attempt at {next_at:%H:%M:%S} UTC"


def warn(message: str) -> None:
    """A WARNING line: in the run's log when there is a run (the UI shows it), else on the console."""
    from prefect import get_run_logger
    from prefect.exceptions import MissingContextError

    try:
        get_run_logger().warning(message)
    except MissingContextError:
        logging.getLogger("prefect.autoresearch.proposer").warning(message)


_cancel = threading.local()


def cancellable(event: threading.Event) -> None:
    """Make retry waits in this thread end early (with Cancelled) once `event` is set."""
    _cancel.event = event


def wait(seconds: float) -> None:
    """Sleep before a retry; a cancelled background thread stops waiting at once."""
    event: threading.Event | None = getattr(_cancel, "event", None)
    if event is None:
        time.sleep(seconds)
    elif event.wait(seconds):
        raise Cancelled


@dataclass
class Policy:
    """How patient to be with one proposer: `key` names its outage (provider and where)."""

    key: str
    patience: float
    warn: Callable[[str], None]
    outages: Outages = OUTAGES
    sleep: Callable[[float], None] = wait
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], datetime] = lambda: datetime.now(UTC)


def patiently(call: Callable[[], T], classify: Callable[[BaseException], Failure | None], policy: Policy) -> T:
    """`call()` until it succeeds; failures that `classify` knows are retried within the patience.

    Anything `classify` does not know (None) is raised as it is. ProviderUnavailable when the next
    attempt would come after the patience ran out.
    """
    attempt = 0
    while True:
        try:
            result = call()
        except Exception as exc:
            failure = classify(exc)
            if failure is None:
                raise
            attempt += 1
            delay = _delay_or_give_up(failure, attempt, policy)
            policy.warn(warning_line(failure, attempt, policy.wall() + timedelta(seconds=delay)))
            policy.sleep(delay)
            continue
        policy.outages.succeeded(policy.key)
        return result


def _delay_or_give_up(failure: Failure, attempt: int, policy: Policy) -> float:
    started, since = policy.outages.failed(policy.key)
    delay = backoff(attempt, failure.retry_after)
    if policy.clock() + delay - started > policy.patience:
        raise ProviderUnavailable(failure, since, policy.patience)
    return delay
