"""The `autoresearch` command line (typer). Bad input: one line on stderr, non-zero exit, no traceback."""

from __future__ import annotations

import atexit
import inspect
import logging
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import click
import typer
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from autoresearch import ledger
from autoresearch.errors import UserError
from autoresearch.options import DeploymentDefaults, LoopOptions
from autoresearch.patience import EXIT_CODE as PROVIDER_EXIT_CODE
from autoresearch.patience import ProviderUnavailable
from autoresearch.secrets import clean_env

if TYPE_CHECKING:
    import pandas as pd

app = typer.Typer(add_completion=False, no_args_is_help=True, help="karpathy/autoresearch's research loop on Prefect.")
out = Console()
RepoOption = Annotated[Path, typer.Option("--repo", help="The experiment repository.")]
EXPERIMENT_FILES = ("prepare.py", "train.py", "program.md", "autoresearch.toml")
GITIGNORE = "run.log\nresults.tsv\n.autoresearch/\n__pycache__/\n"


@app.command()
def init(directory: Annotated[Path, typer.Argument(help="A new or empty directory.")]) -> None:
    """A new experiment repo from the bundled CPU experiment (git init, first commit)."""
    _create_experiment(directory)
    out.print(f"Created {directory}. Next: autoresearch prepare --repo {directory}", markup=False, soft_wrap=True)


def _create_experiment(directory: Path) -> None:
    if directory.exists() and any(directory.iterdir()):
        raise UserError(f"{directory} is not empty; pass a new or empty directory")
    directory.mkdir(parents=True, exist_ok=True)
    source = files("autoresearch.experiments") / "tiny"
    for name in EXPERIMENT_FILES:
        (directory / name).write_text((source / name).read_text())
    (directory / ".gitignore").write_text(GITIGNORE)
    from autoresearch.gitops import Git

    Git.init(directory)
    repo = Git(directory)
    repo.run("add", *EXPERIMENT_FILES, ".gitignore")
    repo.run("commit", "-q", "-m", "autoresearch: the bundled tiny CPU experiment")


@app.command()
def prepare(
    repo: RepoOption = Path("."),
    text_dir: Annotated[Path | None, typer.Option("--text-dir", help="Your own text corpus instead of the stdlib.")] = None,
) -> None:
    """Prepare the bundled experiment's data (runs its prepare.py)."""
    if not (repo / "prepare.py").is_file():
        raise UserError(f"{repo} has no prepare.py; pass --repo an experiment made by `autoresearch init`")
    command = [sys.executable, "prepare.py"] + (["--text-dir", str(text_dir.resolve())] if text_dir else [])
    code = subprocess.run(command, cwd=repo, env=clean_env()).returncode  # no credentials in an experiment
    if code:
        raise UserError(f"prepare.py failed with exit code {code}; see its output above")


DEPLOYED_FLAG = inspect.Parameter(
    "deployed",
    inspect.Parameter.KEYWORD_ONLY,
    default=False,
    annotation=Annotated[
        bool, typer.Option("--deployed", help="Run as a research-loop/default deployment run on the Prefect server.")
    ],
)
WAIT_FLAG = inspect.Parameter(
    "wait",
    inspect.Parameter.KEYWORD_ONLY,
    default=False,
    annotation=Annotated[bool, typer.Option("--wait/--no-wait", help="With --deployed: wait for the loop run to end.")],
)


def _model_flags(model: type[BaseModel], *extra: inspect.Parameter) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """A typer command whose flags are `model`'s fields (help = description) plus `extra`; the command
    receives the validated model (its checks raise one-line errors) and the extra flags."""
    fields = [(name, field) for name, field in model.model_fields.items() if (field.json_schema_extra or {}).get("cli", True)]
    flags = [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=field.default,
            annotation=Annotated[
                field.annotation, typer.Option(*(field.json_schema_extra or {}).get("flag", []), help=field.description)
            ],
        )
        for name, field in fields
    ]

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        def from_flags(**given: Any) -> None:
            own = {parameter.name: given.pop(parameter.name) for parameter in extra}
            return command(model(**given), **own)

        from_flags.__signature__ = inspect.Signature([*flags, *extra])  # type: ignore[attr-defined]
        from_flags.__name__, from_flags.__doc__ = command.__name__, command.__doc__
        return from_flags

    return decorate


@app.command()
@_model_flags(LoopOptions, DEPLOYED_FLAG, WAIT_FLAG)
def run(options: LoopOptions, deployed: bool, wait: bool) -> None:
    """The research loop. An existing tag is resumed, never restarted."""
    from autoresearch.lock import loop_lock
    from autoresearch.patience import proposer_settings
    from autoresearch.proposers import get_proposer
    from autoresearch.setup import preflight
    from autoresearch.workspace import Workspace

    ws = Workspace(options.repo, options.tag, options.config_overrides())
    story = None
    if not deployed:  # the first line: what the loop is about to do (Prefect is not even imported yet)
        from autoresearch import console

        story = console.Story(out, options.time_budget or _configured_budget())
        story.say(console.plan_line(ws.tag, ws.root, ws.branch, options.model_dump()))
    options.check_mode(deployed)
    settings = proposer_settings(ws.config)  # bad options, a dead endpoint: one line now, before any training
    get_proposer(options.proposer, **options.proposer_options(), **settings).check()
    options = options.model_copy(update={"repo": str(ws.root), "tag": ws.tag})
    if deployed:
        with loop_lock(ws.lock_path):
            preflight(ws)
        _configure_prefect()
        _run_deployed(options.flow_parameters(), wait)
        return
    _run_local(ws, options, story)


def _run_local(ws, options: LoopOptions, story) -> None:
    """Local mode: the loop in this process, told on the terminal, visible in the local server's UI."""
    from autoresearch import console, local_server
    from autoresearch.lock import loop_lock
    from autoresearch.setup import preflight

    with loop_lock(ws.lock_path):
        preflight(ws)
        api_url = local_server.ensure(story.say)
        _configure_prefect(quiet_console=True)
        from prefect.settings import PREFECT_API_URL, temporary_settings
        from prefect.utilities.importtools import import_object

        from autoresearch.deployments.definitions import RESEARCH_LOOP
        from autoresearch.prefect_tuning import local_mode

        research_loop = import_object(RESEARCH_LOOP.entrypoint)  # the same flow a deployment runs

        with (
            temporary_settings({PREFECT_API_URL: api_url}),
            local_mode(),  # no heartbeats, batched server writes: see prefect_tuning.py
            console.telling(story),
        ):
            summary = research_loop(**options.flow_parameters())
    for line in console.summary_lines(summary, ws.root, story.ui_url):
        story.say(line)


def _configured_budget() -> float | None:
    value = os.environ.get("AUTORESEARCH_TIME_BUDGET")
    return float(value) if value and value.isdigit() else None


def _print_summary(summary) -> None:
    best = "none yet" if summary.best_value is None else f"{summary.best_value:.6f} ({summary.best_commit})"
    out.print(
        f"{summary.tag}: {summary.stopped}; {summary.rows} rows in results.tsv; best {best}; branch {summary.branch}",
        markup=False,
        soft_wrap=True,
    )


def _run_deployed(parameters: dict, wait: bool) -> None:
    from autoresearch import runs
    from autoresearch.deployments.definitions import RESEARCH_LOOP
    from autoresearch.loop_attempts import loop_run_name, loop_tags
    from autoresearch.workspace import default_tag

    _require_server()
    tag = parameters.get("tag") or default_tag()  # named and tagged from its first log line on
    run_id = runs.start(RESEARCH_LOOP.full_name, parameters, name=loop_run_name(tag), tags=loop_tags(tag), as_subflow=False)
    out.print(f"started {RESEARCH_LOOP.full_name} run {run_id}: {runs.ui_url(run_id)}")
    if wait:
        try:
            _print_summary(runs.result(runs.wait(run_id)))
        except runs.RunFailed as exc:
            raise UserError(f"{exc}; see {runs.ui_url(run_id)}") from None


SCHEDULE_FLAGS = [
    inspect.Parameter(
        "schedule",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[str | None, typer.Option(help="Cron schedule of research-loop, e.g. '0 22 * * *'.")],
    ),
    inspect.Parameter(
        "timezone",
        inspect.Parameter.KEYWORD_ONLY,
        default="UTC",
        annotation=Annotated[str, typer.Option(help="Time zone of --schedule (IANA name).")],
    ),
    inspect.Parameter(
        "notify",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            str | None,
            typer.Option("--notify", help="A notification block (NAME or TYPE-SLUG/NAME) for 'new best' and 'loop stopped'."),
        ],
    ),
]


@app.command()
@_model_flags(DeploymentDefaults, *SCHEDULE_FLAGS)
def deploy(defaults: DeploymentDefaults, schedule: str | None, timezone: str, notify: str | None) -> None:
    """Create (or update) work pools cpu and gpu and the deployments; idempotent."""
    from autoresearch.deployments.apply import deploy as apply

    _require_server()
    if schedule and defaults.repo is None:
        raise UserError("--schedule needs --repo: the experiment repo that the nightly runs work on")
    if defaults.repo:
        defaults = defaults.model_copy(update={"repo": str(Path(defaults.repo).expanduser().resolve())})
    _configure_prefect()
    result = apply(defaults.parameters(), schedule, timezone)
    out.print(f"work pools: {', '.join(result.pools)}")
    for name, deployment_id in result.deployments.items():
        out.print(f"deployment {name} ({deployment_id})")
    if schedule:
        out.print(
            f"research-loop/default runs on schedule {schedule!r} ({timezone})"
            + (f", stopping after {defaults.stop_after}" if defaults.stop_after else "")
        )
    if notify:
        _setup_notifications(notify)
    out.print("next: `autoresearch worker --gpus 0,1` on each GPU machine, then `autoresearch run --deployed --repo DIR`")


@app.command()
def worker(
    gpus: Annotated[str | None, typer.Option(help="GPU indices, one worker (slot) each, e.g. 0,1. Default: all GPUs.")] = None,
    slots: Annotated[int | None, typer.Option(help="CPU-only training slots instead of GPUs (testing).")] = None,
    cpu: Annotated[
        bool, typer.Option("--cpu/--no-cpu", help="Also run a worker for the cpu pool (loops and iterations).")
    ] = True,
    first_slot: Annotated[int, typer.Option(help="Number of the first slot (distinct per machine on a shared filesystem).")] = 0,
    query_seconds: Annotated[
        float,
        typer.Option(
            help="How often workers poll for runs: a freed slot starts its queued training at the next poll (Prefect's default: 10)."
        ),
    ] = 1.0,
) -> None:
    """Start one Prefect worker per GPU slot (plus one for the cpu pool); Ctrl-C stops them all."""
    from autoresearch.worker import WorkerGroup, parse_gpus, plan_workers

    _require_server()
    plans = plan_workers(parse_gpus(gpus) if gpus is not None else None, slots, cpu, first_slot)
    raise typer.Exit(WorkerGroup(plans, query_seconds, echo=out.print).run())


def _require_server(purpose: str = "deployed mode") -> None:
    import urllib.request

    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        raise UserError(
            f"{purpose} needs a Prefect server: start one (`prefect server start`) and set "
            "PREFECT_API_URL=http://127.0.0.1:4200/api (see README, 'Deployed mode')"
        )
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=10):
            pass
    except OSError as exc:
        raise UserError(
            f"cannot reach the Prefect server at {url} ({exc}); start it with `prefect server start` or fix PREFECT_API_URL"
        ) from None


server_app = typer.Typer(no_args_is_help=True, help="The persistent local Prefect server that local mode uses.")
app.add_typer(server_app, name="server")
PortOption = Annotated[int | None, typer.Option("--port", help="Port on 127.0.0.1 (default 4200, or AUTORESEARCH_SERVER_PORT).")]


@server_app.command("start")
def server_start(port: PortOption = None) -> None:
    """Start it in the background (data under the Prefect home, analytics off, 127.0.0.1); idempotent."""
    from autoresearch import local_server

    if port is not None and not 0 < port < 65536:
        raise UserError(f"--port {port} is not a port number")
    before = local_server.running()
    info = local_server.start(port)
    verb = "already running" if before else "started"
    out.print(f"local Prefect server {verb} (pid {info.pid}): UI {info.ui_url}, API {info.api_url}", markup=False, soft_wrap=True)
    if info.port != local_server.DEFAULT_PORT:
        out.print(f"local loops use it; other Prefect clients need PREFECT_API_URL={info.api_url}", markup=False, soft_wrap=True)


@server_app.command("stop")
def server_stop() -> None:
    """Stop the server that `autoresearch server start` (or a local loop) started."""
    from autoresearch import local_server

    info = local_server.stop()
    out.print(f"stopped the local Prefect server (pid {info.pid})" if info else "no local Prefect server was running")


@server_app.command("status")
def server_status() -> None:
    """Whether the local server runs, where, and which API local loops use."""
    from autoresearch import local_server

    info = local_server.recorded()
    own = os.environ.get("PREFECT_API_URL")
    if own:
        out.print(f"PREFECT_API_URL is set: local loops use {own}", markup=False, soft_wrap=True)
    if info is None:
        out.print("the local Prefect server is not running (local loops start it; `autoresearch server start`)")
        return
    state = "running" if local_server.healthy(info.api_url) else "starting (not answering yet)"
    home = local_server.prefect_home()
    out.print(f"local Prefect server {state} (pid {info.pid}): UI {info.ui_url}; data in {home}", markup=False, soft_wrap=True)


DEMO_TAG = "demo"


@app.command()
def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Where the demo experiment lives.")] = Path("autoresearch-demo"),
    iterations: Annotated[int, typer.Option(help="Experiments after the baseline.")] = 4,
    time_budget: Annotated[int, typer.Option(help="Training budget per run, seconds of CPU time.")] = 8,
) -> None:
    """The main job on the bundled experiment in one command: init, prepare, a short research loop."""
    if not (directory / ".git").is_dir():
        _create_experiment(directory)
        out.print(f"created the experiment {directory} (the bundled tiny CPU experiment)", markup=False, soft_wrap=True)
    if not (directory / "prepare.py").is_file():
        raise UserError(f"{directory} is not an experiment made by `autoresearch init`; pass --dir a new directory")
    from autoresearch.config import load_config

    data = load_config(directory).data_path()
    if not (data.is_dir() and any(data.iterdir())):
        out.print(f"preparing the data in {data} (once)", markup=False, soft_wrap=True)
        prepare(directory)
    run(repo=str(directory), tag=DEMO_TAG, iterations=iterations, time_budget=time_budget, deployed=False, wait=False)


FileOption = Annotated[Path | None, typer.Option("--file", help="A results.tsv anywhere (default: the repo's).")]
TagOption = Annotated[
    str | None, typer.Option("--tag", help="The loop's tag, for titles. Default: from the branch autoresearch/<tag>.")
]
DirectionOption = Annotated[
    str | None, typer.Option("--direction", help="minimize or maximize. Default: the repo's autoresearch.toml, else minimize.")
]


@app.command()
def status(
    repo: RepoOption = Path("."),
    file: FileOption = None,
    direction: DirectionOption = None,
    rows: Annotated[int, typer.Option(help="Show the last N rows.")] = 20,
    all_rows: Annotated[bool, typer.Option("--all", help="Show every row.")] = False,
) -> None:
    """The ledger as a table, then the summary: baseline, best, improvement, keeps, crashes, top gains."""
    from autoresearch.summary import summarize

    path, metric, entries, direction = _ledger(repo, file, direction)
    out.print(_ledger_table(path, metric, entries, len(entries) if all_rows else min(rows, len(entries))))
    s = summarize(entries, direction)
    counts = f"{s.keeps} kept, {s.discards} discarded, {s.crashes} crashed"
    if s.best is None:
        out.print(f"{s.experiments} runs, no keep yet ({counts})")
    else:
        out.print(
            f"baseline {s.baseline:.6f} -> best {s.best:.6f} at {s.best_commit}: {s.best_description}",
            markup=False,
            soft_wrap=True,
        )
        percent = "" if s.improvement_percent is None else f" ({s.improvement_percent:+.2f}%)"
        out.print(f"improvement {s.improvement:+.6f}{percent} ({direction}); {s.experiments} runs: {counts}", soft_wrap=True)
        if s.top_gains:
            out.print(_gains_table(s.top_gains, metric))
    _print_loop_state(repo if file is None else None)


def _ledger_table(path: Path, metric: str, entries: pd.DataFrame, shown: int) -> Table:
    """The last `shown` rows of the ledger, coloured by status; the title says how many of how many."""
    everything = shown == len(entries)
    title = (
        f"{path}: all {len(entries)} rows"
        if everything
        else f"{path}: last {shown} of {len(entries)} rows (--all shows every row)"
    )
    table = Table(title=escape(title))
    for column in ("#", "commit", metric, "memory_gb", "status", "description"):
        table.add_column(column, justify="right" if column in ("#", metric, "memory_gb") else "left")
    style = {"keep": "green", "discard": "grey50", "crash": "red"}
    for number, row in entries.tail(shown).iterrows():
        table.add_row(
            str(number),
            escape(row.commit),
            f"{row.value:.6f}",
            f"{row.memory_gb:.1f}",
            row.status,
            escape(row.description),
            style=style[row.status],
        )
    return table


def _gains_table(top_gains: list, metric: str) -> Table:
    gains = Table(title="Top gains (each keep against the keep before it)")
    for column in ("#", "commit", "gain", metric, "description"):
        gains.add_column(column, justify="left" if column in ("commit", "description") else "right")
    for gain in top_gains:
        gains.add_row(str(gain.number), escape(gain.commit), f"{gain.gain:+.6f}", f"{gain.value:.6f}", escape(gain.description))
    return gains


def _print_loop_state(repo: Path | None) -> None:
    for line in _loop_state_lines(repo) if repo else []:
        out.print(line, markup=False, soft_wrap=True)


def _loop_state_lines(repo: Path) -> list[str]:
    """Noise and proposer cost of the loop whose branch is checked out (from .git/autoresearch/<tag>.json)."""
    from autoresearch.workspace import Workspace

    try:
        ws = Workspace(repo)
        branch = ws.git.current_branch() or ""
        if not branch.startswith("autoresearch/"):
            return []
        ws = Workspace(repo, branch.removeprefix("autoresearch/"))
    except UserError:
        return []
    lines = []
    sigma = ws.recorded("noise").get("sigma")
    if sigma is not None:
        lines.append(
            f"noise: sigma {sigma:.6f} from the baseline repeats; gains below 2 sigma = {2 * sigma:.6f} count as no change"
        )
    usage = ws.loop_usage()
    if usage.requests:
        lines.append(f"proposer cost ({ws.tag}): {usage.line()}")
    return lines


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
    _require_server("notify")
    _setup_notifications(block)


def _setup_notifications(block: str) -> None:
    from autoresearch.notifications import setup_notifications

    names = setup_notifications(block)
    out.print(f"automations {', '.join(repr(n) for n in names)} send through block {block!r}", markup=False, soft_wrap=True)


def _ledger(repo: Path, file: Path | None, direction: str | None) -> tuple[Path, str, pd.DataFrame, str]:
    """(path, metric, results, direction) of any results.tsv: --file, or the repo's."""
    from autoresearch.summary import read_results

    path = file or repo / ledger.LEDGER_FILE
    if file is None and not path.exists():
        raise UserError(f"no results.tsv in {repo}; start a loop with `autoresearch run --repo {repo}`, or pass --file")
    if direction not in (None, "minimize", "maximize"):
        raise UserError(f"--direction {direction!r}: use minimize or maximize")
    results = read_results(path)
    return path, results.attrs["metric"], results, direction or _direction(path.parent)


def _tag_of(directory: Path) -> str | None:
    from autoresearch.gitops import Git

    try:
        name = Git(directory).current_branch() or ""
    except UserError:
        return None
    return name.removeprefix("autoresearch/") if name.startswith("autoresearch/") else None


def _direction(repo: Path) -> str:
    try:
        from autoresearch.config import load_config

        return load_config(repo).direction
    except UserError:
        return "minimize"


def _configure_prefect(quiet_console: bool = False) -> None:
    """Offline-friendly defaults, and user errors raised inside flows logged without a traceback.

    quiet_console: Prefect's own console lines show warnings only (the terminal tells the loop's story;
    every INFO line still goes to the server and shows in the UI).
    """
    import prefect  # noqa: F401  (configures logging)
    from prefect.logging.handlers import PrefectConsoleHandler

    loggers = [logging.getLogger(name) for name in ("prefect", "prefect.flow_runs", "prefect.task_runs", "")]
    for target in loggers + [handler for logger in loggers for handler in logger.handlers]:
        target.addFilter(_drop_user_error_tracebacks)
        if quiet_console and isinstance(target, PrefectConsoleHandler):
            target.setLevel(logging.WARNING)


def _drop_user_error_tracebacks(record: logging.LogRecord) -> bool:
    if record.exc_info and isinstance(record.exc_info[1], (UserError, KeyboardInterrupt)):
        record.exc_info, record.exc_text = None, None
    return True


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


_exit_code = [1]  # what the process exits with; an uncaught exception is 1


def _exit(code: int) -> NoReturn:
    _exit_code[0] = code
    sys.exit(code)


def _skip_teardown() -> None:
    """The last exit handler: the others (Prefect flushing its logs and events) have run; the interpreter's
    teardown would now garbage-collect every module of Prefect and the provider SDKs again and again:
    seconds on a loaded machine, with a proposal hanging in a daemon thread. Flush and leave instead."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_exit_code[0])


def _command_line() -> str:
    return shlex.join(["autoresearch", *sys.argv[1:]])


def main() -> None:
    atexit.register(_skip_teardown)  # registered first, so it runs last
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "300")  # a busy machine starts slowly
    os.environ.setdefault("PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL", "WARNING")  # the UI shows tasks
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started in the background (SIG_IGN)
    try:
        code = app(standalone_mode=False)  # typer turns Ctrl-C into exit code 130
        if code == 130:
            raise KeyboardInterrupt
        _exit(code or 0)
    except ProviderUnavailable as exc:
        print(f"stopped: {exc}; when it is back, resume with: {_command_line()}", file=sys.stderr)
        _exit(PROVIDER_EXIT_CODE)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        _exit(2)
    except click.ClickException as exc:  # usage errors
        exc.show()
        _exit(exc.exit_code)
    except BaseException as exc:
        # Ctrl-C arrives as click's Abort or KeyboardInterrupt; SIGTERM during a flow as Prefect's TerminationSignal.
        if isinstance(exc, SystemExit):
            _exit_code[0] = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            raise
        if isinstance(exc, (KeyboardInterrupt, click.exceptions.Abort)) or type(exc).__name__ == "TerminationSignal":
            print("interrupted: the branch is at the last keep; run the same command again to resume", file=sys.stderr)
            _exit(130)
        raise


if __name__ == "__main__":
    main()
