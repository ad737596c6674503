"""The progress of a training while it runs: the share of its time budget elapsed, shown in the Prefect UI.

Read from the end of run.log as it grows: karpathy's train.py (and the tiny experiment) print lines
like `step 00042 (12.3%) | loss: ...`, karpathy's with carriage returns. A log without such lines
falls back to wall-clock time over the time budget. A background thread publishes it every few
seconds; it only reads the last few KB of the log, never slows the training (a separate process),
and never fails the run: errors are logged once and the run goes on.
"""

from __future__ import annotations

import contextvars
import logging
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

from autoresearch import console

TAIL_BYTES = 4096
DEFAULT_TIME_BUDGET = 300.0  # karpathy's prepare.py (and the tiny experiment) when no --time-budget is given
STEP = re.compile(rb"step\s+\d+\s+\((\d+(?:\.\d+)?)%\)")
STEP_LINE = re.compile(rb"step\s+(\d+)\s+\([^)]*\)\s*\|\s*loss:\s*([0-9.]+)")
logger = logging.getLogger("autoresearch.progress")


def percent_in(tail: bytes) -> float | None:
    """The last `(NN.N%)` of a step line in `tail`, or None."""
    matches = STEP.findall(tail)
    return float(matches[-1]) if matches else None


def step_summary(tail: bytes) -> str | None:
    """`step 00120 loss 3.2100` from the last step line in `tail`, or None."""
    matches = STEP_LINE.findall(tail)
    if not matches:
        return None
    step, loss = matches[-1]
    return f"step {step.decode()} loss {float(loss):.4f}"


def read_tail(path: Path, size: int = TAIL_BYTES) -> bytes:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            handle.seek(max(0, handle.tell() - size))
            return handle.read(size)
    except OSError:
        return b""


def estimate(log_path: Path, elapsed: float, time_budget: float) -> float:
    """Percent done, 0..100: from the log's step lines, else elapsed / time budget."""
    found = percent_in(read_tail(log_path))
    percent = found if found is not None else 100.0 * elapsed / time_budget
    return round(min(100.0, max(0.0, percent)), 1)


class ProgressWatcher:
    """`with ProgressWatcher(log, budget, publish): run the training`: publish(percent) every `interval` s.

    Publishes the first value at once, then only increases, and a last value when the block ends.
    The thread runs in a copy of the caller's context (so Prefect links artifacts to the task run).
    """

    def __init__(
        self,
        log_path: Path,
        time_budget: float | None,
        publish: Callable[[float], None],
        interval: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log_path, self.time_budget = Path(log_path), float(time_budget or DEFAULT_TIME_BUDGET)
        self.publish, self.interval, self.clock = publish, interval, clock
        self.published: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failed = False

    def __enter__(self) -> Self:
        self._started = self.clock()
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._watch,), name="training-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)  # a hung API call must not hold up the loop: the thread is a daemon

    def _watch(self) -> None:
        stopping = False
        while not stopping:
            self._tick()
            stopping = self._stop.wait(self.interval)
        self._tick()  # the last value, once the training has ended

    def _tick(self) -> None:
        percent = estimate(self.log_path, self.clock() - self._started, self.time_budget)
        if self.published and percent <= self.published[-1]:
            return  # never backwards (e.g. a log whose tail lost its step lines to other output)
        try:
            self.publish(percent)
            self.published.append(percent)
        except Exception as exc:  # noqa: BLE001 (progress must never fail the training)
            if not self._failed:
                logger.warning("training progress not published (the run goes on): %s", exc)
            self._failed = True


class PrefectProgress:
    """A publisher: a progress artifact (created on the first value, then updated in place)."""

    def __init__(self, key: str, description: str) -> None:
        self.key, self.description, self.artifact_id = key, description, None

    def __call__(self, percent: float) -> None:
        from prefect.artifacts import create_progress_artifact, update_progress_artifact
        from prefect.context import FlowRunContext, TaskRunContext

        if FlowRunContext.get() is None and TaskRunContext.get() is None:
            return  # a training outside any Prefect run (a bench, a test): nothing to show it in
        if self.artifact_id is None:
            self.artifact_id = create_progress_artifact(percent, key=self.key, description=self.description)
        else:
            update_progress_artifact(self.artifact_id, percent)


def training_progress(log_path: Path, time_budget: float | None, tag: str, iteration: int, commit: str) -> ProgressWatcher:
    """The hook around a training run: the progress artifact `training-<tag>` in the Prefect UI, updated every 3 s."""
    from autoresearch.artifacts import artifact_key

    description = f"{tag} · iter {iteration:04d} · {commit[:7]}: share of the time budget elapsed"
    artifact = PrefectProgress(artifact_key("training", tag), description)

    def publish(percent: float) -> None:
        console.training(percent, step_summary(read_tail(Path(log_path))))  # the terminal's live line
        artifact(percent)

    return ProgressWatcher(log_path, time_budget, publish)
