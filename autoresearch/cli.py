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
        from autoresearch.flows.research_loop import research_loop
        from autoresearch.prefect_tuning import local_mode

        with local_mode():  # no heartbeats, fast retries of SQLite lock conflicts: see prefect_tuning.py
            summary = research_loop(
                repo=str(ws.root), tag=ws.tag, iterations=iterations, proposer=proposer,
                time_budget=time_budget, timeout_seconds=timeout, parallel=parallel,
            )
    best = "none yet" if summary.best_value is None else f"{summary.best_value:.6f} ({summary.best_commit})"
    out.print(f"{summary.tag}: {summary.stopped}; {summary.rows} rows in results.tsv; best {best}; branch {summary.branch}")


@app.command()
def status(repo: RepoOption = Path("."), rows: Annotated[int, typer.Option(help="Show the last N rows.")] = 20) -> None:
    """The ledger as a table: baseline, best, keeps, crashes."""
    from autoresearch.summary import summarize

    path = repo / ledger.LEDGER_FILE
    if not path.exists():
        raise UserError(f"no results.tsv in {repo}; start a loop with `autoresearch run --repo {repo}`")
    text = path.read_text(encoding="utf-8", errors="replace")
    entries = ledger.parse(text, where=str(path))
    metric = text.split("\t", 2)[1]
    direction = _direction(repo)
    table = Table(title=f"{path} ({len(entries)} runs)")
    for column in ("#", "commit", metric, "memory_gb", "status", "description"):
        table.add_column(column, justify="right" if column in ("#", metric, "memory_gb") else "left")
    style = {"keep": "green", "discard": "grey50", "crash": "red"}
    for number, row in list(enumerate(entries))[-rows:]:
        table.add_row(str(number), row.commit, f"{row.value:.6f}", f"{row.memory_gb:.1f}", row.status, row.description, style=style[row.status])
    out.print(table)
    s = summarize(entries, direction)
    if s.best is None:
        out.print(f"{s.experiments} runs, no keep yet ({s.crashes} crashes)")
        return
    out.print(
        f"baseline {s.baseline:.6f} -> best {s.best:.6f} ({s.improvement_percent:+.2f}%) at {s.best_commit} "
        f"[{s.best_description}]; {s.keeps} kept, {s.discards} discarded, {s.crashes} crashed"
    )


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
