"""The terminal's story of a local loop: what it is about to do, a live line while an iteration runs,
one labelled result line per iteration, and a closing summary with the next commands.

On a terminal the live line is a rich Live display (description, training progress from the run's
step lines, elapsed/budget); elsewhere (a pipe, a log file, CI) every line is printed plain and never
wrapped, so commands in it can be copied. The loop reports through the module-level functions below,
which do nothing when no story is being told (deployed mode, tests that call flows directly).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel
from rich.console import Console
from rich.live import Live
from rich.text import Text

LIVE_REFRESH_PER_SECOND = 2
STATUS_STYLE = {"keep": "green", "discard": "grey50", "crash": "red"}


class IterationResult(BaseModel):
    iteration: int
    description: str
    metric: str
    value: float
    best_before: float | None  # the value to beat when the iteration started
    status: str
    reason: str


def result_line(r: IterationResult) -> str:
    """`iter 0007  MATRIX_LR 0.04 -> 0.06  val_bpb 0.9912 (best 0.9934, -0.0022)  keep: ...`."""
    head = f"iter {r.iteration:04d}  {r.description}"
    if r.status == "crash":
        return f"{head}  crash: {r.reason}"
    score = f"{r.metric} {r.value:.4f}"
    if r.best_before is not None:
        score += f" (best {r.best_before:.4f}, {r.value - r.best_before:+.4f})"
    return f"{head}  {score}  {r.status}: {r.reason}"


def live_line(
    iteration: int, description: str, percent: float | None, step: str | None, elapsed: float, budget: float | None
) -> str:
    """`iter 0007  MATRIX_LR 0.04 -> 0.06  training 45%  step 00120 loss 3.21  0:05 / 0:10`."""
    clock = _clock(elapsed) + (f" / {_clock(budget)} budget" if budget else "")
    doing = "proposing / preparing" if percent is None else f"training {percent:.0f}%"
    return "  ".join(part for part in (f"iter {iteration:04d}", description, doing, step or "", clock) if part)


def plan_line(tag: str, repo: Path, branch: str, parameters: dict) -> str:
    """What the loop is about to do, in one line (printed first, before Prefect is even imported)."""
    count = parameters.get("iterations")
    how_many = f"{count} iteration{'s' if count != 1 else ''}" if count else "iterations until Ctrl-C"
    if parameters.get("stop_after"):
        how_many += f" (none started after {parameters['stop_after']})"
    budget = parameters.get("time_budget")
    each = f", {budget} s training budget each" if budget else ""
    return (
        f"research loop {tag!r} in {repo} on branch {branch}: baseline first (or resume), "
        f"then {how_many} proposed by {parameters.get('proposer', 'mutate')}{each}"
    )


def summary_lines(summary: object, repo: Path, ui_url: str | None) -> list[str]:
    """The closing lines: what happened, then the commands that show it."""
    best = "none yet" if summary.best_value is None else f"{summary.best_value:.6f} ({summary.best_commit})"
    lines = [
        f"{summary.tag}: {summary.stopped}; {summary.rows} rows in results.tsv; best {best}; branch {summary.branch}",
        f"next: autoresearch status --repo {repo}",
        f"      autoresearch plot --repo {repo} -o progress.png",
    ]
    if ui_url:
        lines.append(f"      the loop in the Prefect UI: {ui_url}")
    return lines


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


class Story:
    """Tells one loop's story on `console` (stdout by default)."""

    def __init__(self, console: Console | None = None, time_budget: float | None = None) -> None:
        self.console = console or Console(soft_wrap=True)
        self.time_budget = time_budget
        self._live: Live | None = None
        self._lock = threading.Lock()
        self._iteration: tuple[int, str, float] | None = None
        self._percent: float | None = None
        self._step: str | None = None
        self.ui_url: str | None = None

    def loop_started(self, ui_url: str | None) -> None:
        self.ui_url = ui_url
        if ui_url:
            self.say(f"watch it in the Prefect UI: {ui_url}")

    def say(self, line: str, style: str | None = None) -> None:
        """One plain line: no markup, no highlighting, never wrapped."""
        with self._lock:
            self.console.print(Text(line, style=style or ""), soft_wrap=True, highlight=False)

    def iteration_started(self, iteration: int, description: str) -> None:
        same = self._iteration is not None and self._iteration[0] == iteration
        started = self._iteration[2] if same else time.monotonic()
        self._iteration, self._percent, self._step = (iteration, description, started), None, None
        if self.console.is_terminal and self._live is None:
            self._live = Live(
                get_renderable=self._render, console=self.console, refresh_per_second=LIVE_REFRESH_PER_SECOND, transient=True
            )
            self._live.start()

    def training(self, percent: float, step: str | None) -> None:
        self._percent, self._step = percent, step

    def result(self, r: IterationResult) -> None:
        self._stop_live()
        self._iteration = None
        self.say(result_line(r), STATUS_STYLE.get(r.status) if self.console.is_terminal else None)

    def _render(self) -> Text:
        if self._iteration is None:
            return Text("")
        iteration, description, started = self._iteration
        line = live_line(iteration, description, self._percent, self._step, time.monotonic() - started, self.time_budget)
        return Text(line, style="bold", no_wrap=True, overflow="ellipsis")

    def _stop_live(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def close(self) -> None:
        self._stop_live()


_current: Story | None = None


@contextmanager
def telling(story: Story) -> Iterator[Story]:
    """Route the loop's reports to `story` for the duration of the block."""
    global _current
    _current = story
    try:
        yield story
    finally:
        story.close()
        _current = None


def say(line: str) -> None:
    if _current is not None:
        _current.say(line)


def loop_started(ui_url: str | None) -> None:
    if _current is not None:
        _current.loop_started(ui_url)


def iteration_started(iteration: int, description: str) -> None:
    if _current is not None:
        _current.iteration_started(iteration, description)


def training(percent: float, step: str | None) -> None:
    if _current is not None:
        _current.training(percent, step)


def iteration_result(result: IterationResult) -> None:
    if _current is not None:
        _current.result(result)
