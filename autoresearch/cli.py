"""The `autoresearch` command line (typer). Bad input: one line on stderr, non-zero exit, no traceback."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Optional

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from autoresearch import ledger
from autoresearch.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="karpathy/autoresearch's research loop on Prefect.")
out = Console()
RepoOption = Annotated[Path, typer.Option("--repo", help="The experiment repository.")]
EXPERIMENT_FILES = ("prepare.py", "train.py", "program.md", "autoresearch.toml")
GITIGNORE = "run.log\nresults.tsv\n.autoresearch/\n__pycache__/\n"


@app.command()
def init(directory: Annotated[Path, typer.Argument(help="A new or empty directory.")]) -> None:
    """A new experiment repo from the bundled CPU experiment (git init, first commit)."""
    if directory.exists() and any(directory.iterdir()):
        raise UserError(f"{directory} is not empty; pass a new or empty directory")
    directory.mkdir(parents=True, exist_ok=True)
    source = files("autoresearch.experiments") / "tiny"
    for name in EXPERIMENT_FILES:
        (directory / name).write_text((source / name).read_text())
    (directory / ".gitignore").write_text(GITIGNORE)
    subprocess.run(["git", "init", "-q", str(directory)], check=True)
    from autoresearch.gitops import Git

    repo = Git(directory)
    repo.run("add", *EXPERIMENT_FILES, ".gitignore")
    repo.run("commit", "-q", "-m", "autoresearch: the bundled tiny CPU experiment")
    out.print(f"Created {directory}. Next: autoresearch prepare --repo {directory}")


@app.command()
def prepare(
    repo: RepoOption = Path("."),
    text_dir: Annotated[Optional[Path], typer.Option("--text-dir", help="Your own text corpus instead of the stdlib.")] = None,
) -> None:
    """Prepare the bundled experiment's data (runs its prepare.py)."""
    if not (repo / "prepare.py").is_file():
        raise UserError(f"{repo} has no prepare.py; pass --repo an experiment made by `autoresearch init`")
    command = [sys.executable, "prepare.py"] + (["--text-dir", str(text_dir.resolve())] if text_dir else [])
    code = subprocess.run(command, cwd=repo).returncode
    if code:
        raise UserError(f"prepare.py failed with exit code {code}; see its output above")


@app.command()
def run(
    repo: RepoOption = Path("."),
    tag: Annotated[Optional[str], typer.Option(help="Run name; branch autoresearch/<tag>. Default: today, e.g. nov25.")] = None,
    iterations: Annotated[Optional[int], typer.Option(help="Experiments to run now (baseline not counted). Default: forever.")] = None,
    proposer: Annotated[str, typer.Option(help="Where ideas come from: mutate (offline).")] = "mutate",
    time_budget: Annotated[Optional[int], typer.Option(help="Training seconds per run (AUTORESEARCH_TIME_BUDGET).")] = None,
    timeout: Annotated[Optional[float], typer.Option(help="Hard limit per training run, seconds (default 600).")] = None,
    parallel: Annotated[int, typer.Option(help="Candidates per round (deployed mode).")] = 1,
) -> None:
    """The research loop. An existing tag is resumed, never restarted."""
    if iterations is not None and iterations < 1:
        raise UserError("--iterations must be at least 1 (omit it to run forever)")
    if time_budget is not None and time_budget < 1:
        raise UserError("--time-budget must be at least 1 second")
    from autoresearch.lock import loop_lock
    from autoresearch.proposers import get_proposer
    from autoresearch.setup import preflight
    from autoresearch.workspace import Workspace

    get_proposer(proposer)
    ws = Workspace(repo, tag, {"timeout_seconds": timeout})
    with loop_lock(ws.lock_path):
        preflight(ws)
        _configure_prefect()
        from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

        from autoresearch.flows.research_loop import research_loop

        # Local mode: no worker watches heartbeats, and joining the heartbeat thread costs ~1 s per flow run.
        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            summary = research_loop(
                repo=str(ws.root), tag=ws.tag, iterations=iterations, proposer=proposer,
                time_budget=time_budget, timeout_seconds=timeout, parallel=parallel,
            )
    best = "none yet" if summary.best_value is None else f"{summary.best_value:.6f} ({summary.best_commit})"
    out.print(f"{summary.tag}: {summary.stopped}; {summary.rows} rows in results.tsv; best {best}; branch {summary.branch}")


FileOption = Annotated[Path | None, typer.Option("--file", help="A results.tsv anywhere (default: the repo's).")]
TagOption = Annotated[str | None, typer.Option("--tag", help="The loop's tag, for titles. Default: from the branch autoresearch/<tag>.")]
DirectionOption = Annotated[
    str | None, typer.Option("--direction", help="minimize or maximize. Default: the repo's autoresearch.toml, else minimize.")
]


@app.command()
def status(
    repo: RepoOption = Path("."),
    file: FileOption = None,
    direction: DirectionOption = None,
    rows: Annotated[int, typer.Option(help="Show the last N rows.")] = 20,
) -> None:
    """The ledger as a table, then the summary: baseline, best, improvement, keeps, crashes, top gains."""
    from autoresearch.summary import summarize

    path, metric, entries, direction = _ledger(repo, file, direction)
    table = Table(title=f"{path} ({len(entries)} runs)")
    for column in ("#", "commit", metric, "memory_gb", "status", "description"):
        table.add_column(column, justify="right" if column in ("#", metric, "memory_gb") else "left")
    style = {"keep": "green", "discard": "grey50", "crash": "red"}
    for number, row in list(enumerate(entries))[-rows:]:
        table.add_row(str(number), escape(row.commit), f"{row.value:.6f}", f"{row.memory_gb:.1f}", row.status, escape(row.description), style=style[row.status])
    out.print(table)
    s = summarize(entries, direction)
    counts = f"{s.keeps} kept, {s.discards} discarded, {s.crashes} crashed"
    if s.best is None:
        out.print(f"{s.experiments} runs, no keep yet ({counts})")
        return
    out.print(f"baseline {s.baseline:.6f} -> best {s.best:.6f} at {s.best_commit}: {s.best_description}", markup=False, soft_wrap=True)
    percent = "" if s.improvement_percent is None else f" ({s.improvement_percent:+.2f}%)"
    out.print(f"improvement {s.improvement:+.6f}{percent} ({direction}); {s.experiments} runs: {counts}", soft_wrap=True)
    if s.top_gains:
        gains = Table(title="Top gains (each keep against the keep before it)")
        for column in ("#", "commit", "gain", metric, "description"):
            gains.add_column(column, justify="left" if column in ("commit", "description") else "right")
        for gain in s.top_gains:
            gains.add_row(str(gain.number), escape(gain.commit), f"{gain.gain:+.6f}", f"{gain.value:.6f}", escape(gain.description))
        out.print(gains)


@app.command()
def plot(
    repo: RepoOption = Path("."),
    file: FileOption = None,
    tag: TagOption = None,
    direction: DirectionOption = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the PNG.")] = Path("progress.png"),
) -> None:
    """karpathy's progress plot of results.tsv as a PNG: keeps green, discards grey, running best."""
    from autoresearch.plot import plot_data, render_png

    path, metric, entries, direction = _ledger(repo, file, direction)
    data = plot_data(entries, metric, direction, tag or _tag_of(path.parent))
    try:
        render_png(data, output)
    except OSError as exc:
        raise UserError(f"cannot write {output}: {exc.strerror}; pass -o a writable path") from None
    out.print(f"{data.title} -> {output}")


@app.command()
def notify(block: Annotated[str, typer.Option("--block", help="A saved notification block: NAME or TYPE-SLUG/NAME.")]) -> None:
    """Send "new best" and "loop stopped" through a Prefect notification block (creates or updates two automations)."""
    from prefect.settings import PREFECT_API_URL

    from autoresearch.notifications import setup_notifications

    api = PREFECT_API_URL.value()
    if not api:
        raise UserError("notifications need a Prefect server: run `prefect server start`, set PREFECT_API_URL, then try again")
    try:
        names = setup_notifications(block)
    except OSError as exc:
        raise UserError(f"cannot reach the Prefect API at {api} ({exc}); is the server running?") from None
    out.print(f"automations {', '.join(repr(n) for n in names)} send through block {block!r}", markup=False, soft_wrap=True)


def _ledger(repo: Path, file: Path | None, direction: str | None) -> tuple[Path, str, list, str]:
    """(path, metric, rows, direction) of any results.tsv: --file, or the repo's."""
    path = file or repo / ledger.LEDGER_FILE
    if file is None and not path.exists():
        raise UserError(f"no results.tsv in {repo}; start a loop with `autoresearch run --repo {repo}`, or pass --file")
    if direction not in (None, "minimize", "maximize"):
        raise UserError(f"--direction {direction!r}: use minimize or maximize")
    metric, rows = ledger.read_any(path)
    return path, metric, rows, direction or _direction(path.parent)


def _tag_of(directory: Path) -> str | None:
    branch = subprocess.run(["git", "symbolic-ref", "-q", "--short", "HEAD"], cwd=directory, capture_output=True, text=True, check=False)
    name = branch.stdout.strip()
    return name.removeprefix("autoresearch/") if name.startswith("autoresearch/") else None


def _direction(repo: Path) -> str:
    try:
        from autoresearch.config import load_config

        return load_config(repo).direction
    except UserError:
        return "minimize"


def _configure_prefect() -> None:
    """Offline-friendly defaults, and user errors raised inside flows logged without a traceback."""
    import prefect  # noqa: F401  (configures logging)

    loggers = [logging.getLogger(name) for name in ("prefect", "prefect.flow_runs", "prefect.task_runs", "")]
    for target in loggers + [handler for logger in loggers for handler in logger.handlers]:
        target.addFilter(_drop_user_error_tracebacks)


def _drop_user_error_tracebacks(record: logging.LogRecord) -> bool:
    if record.exc_info and isinstance(record.exc_info[1], (UserError, KeyboardInterrupt)):
        record.exc_info, record.exc_text = None, None
    return True


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL", "WARNING")  # the UI shows tasks
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started in the background (SIG_IGN)
    try:
        code = app(standalone_mode=False)  # typer turns Ctrl-C into exit code 130
        if code == 130:
            raise KeyboardInterrupt
        sys.exit(code or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except click.ClickException as exc:  # usage errors
        exc.show()
        sys.exit(exc.exit_code)
    except BaseException as exc:
        # Ctrl-C arrives as click's Abort or KeyboardInterrupt; SIGTERM during a flow as Prefect's TerminationSignal.
        if isinstance(exc, SystemExit):
            raise
        if isinstance(exc, (KeyboardInterrupt, click.exceptions.Abort)) or type(exc).__name__ == "TerminationSignal":
            print("interrupted: the branch is at the last keep; run the same command again to resume", file=sys.stderr)
            sys.exit(130)
        raise


if __name__ == "__main__":
    main()
