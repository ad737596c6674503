"""The contenders: one function per way of running the loop, each returning a `LoopRun` measured from outside.

- `bash`: bench/bash_loop.sh, the protocol in plain bash.
- `local`: `autoresearch run` in local mode (Prefect's ephemeral API on SQLite, a fresh PREFECT_HOME).
- `deployed`: `autoresearch run --deployed --wait` against a fresh `prefect server` with `autoresearch
  worker --slots 2` (bench/stack.py); the watched process is the CLI, the loop itself runs on a worker.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.experiment import BENCH, GIT_IDENTITY, make_repo, training_seconds
from bench.stack import CLI, prefect_stack
from bench.watch import run_watched

TAG = "bench"


@dataclass
class LoopRun:
    mode: str
    proposer: str
    iterations: int  # experiments after the baseline
    train_seconds: float  # what the fake trainer was told to sleep
    wall: float  # start of the command to its exit
    row_times: list[float]  # seconds from start until results.tsv row i appeared
    training: list[float]  # training seconds that run i reported
    row_rss_kb: list[int] = field(default_factory=list)
    returncode: int = 0
    output_tail: str = ""
    loadavg: float | None = None  # 1-minute load average, mean of start and end (the machine is shared)

    @property
    def rows(self) -> int:
        return len(self.row_times)

    def gaps(self) -> list[float]:
        """Per iteration after the baseline: seconds between two rows beyond that run's training."""
        return [b - a - t for a, b, t in zip(self.row_times, self.row_times[1:], self.training[1:], strict=False)]

    def startup(self) -> float:
        """Start to the baseline's row, beyond the baseline's training (imports, API start, setup)."""
        return self.row_times[0] - self.training[0]

    def overhead_per_iteration(self) -> float:
        """Mean seconds per iteration beyond training, baseline row to last row (startup excluded)."""
        gaps = self.gaps()
        return sum(gaps) / len(gaps) if gaps else float("nan")

    def idle_fraction(self, whole: bool = False) -> float:
        """(wall - training) / wall between the baseline's row and the last row, or over the whole run."""
        if whole:
            return (self.wall - sum(self.training)) / self.wall
        span = self.row_times[-1] - self.row_times[0]
        return (span - sum(self.training[1:])) / span if span else float("nan")

    def summary(self) -> dict:
        gaps = self.gaps()
        return {
            "mode": self.mode,
            "proposer": self.proposer,
            "iterations": self.iterations,
            "rows": self.rows,
            "train_seconds": self.train_seconds,
            "wall_s": round(self.wall, 3),
            "startup_s": round(self.startup(), 3),
            "overhead_mean_s": round(self.overhead_per_iteration(), 3),
            "overhead_median_s": round(statistics.median(gaps), 3) if gaps else None,
            "overhead_max_s": round(max(gaps), 3) if gaps else None,
            "idle_fraction_steady": round(self.idle_fraction(), 5),
            "idle_fraction_whole": round(self.idle_fraction(whole=True), 5),
            "returncode": self.returncode,
            "loadavg": self.loadavg,
        }

    def to_json(self) -> dict:
        return {"summary": self.summary(), **{k: v for k, v in asdict(self).items() if k != "output_tail"}}


def clean_env(workdir: Path, train_seconds: float) -> dict[str, str]:
    """No PREFECT_* from the caller (local mode = ephemeral API), a fresh PREFECT_HOME, the fake trainer's sleep."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(GIT_IDENTITY)
    env.update(
        PREFECT_HOME=str(workdir / "prefect"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        FAKE_TRAIN_SECONDS=str(train_seconds),
        PYTHON=sys.executable,
    )
    return env


def hard_timeout(train_seconds: float) -> float:
    """The per-run hard limit: well above the fake training time, so no run in a benchmark times out."""
    return 2 * train_seconds + 60


def _check(run: LoopRun) -> LoopRun:
    if run.returncode != 0 or run.rows != run.iterations + 1:
        raise RuntimeError(
            f"{run.mode} loop failed (exit {run.returncode}, {run.rows} of {run.iterations + 1} rows):\n{run.output_tail}"
        )
    return run


def bash(workdir: Path, iterations: int, train_seconds: float, proposer: str = "sed") -> LoopRun:
    repo = make_repo(workdir / "exp", hard_timeout(train_seconds))
    command = ["bash", str(BENCH / "bash_loop.sh"), str(repo), str(iterations), str(int(hard_timeout(train_seconds)))]
    watched = run_watched(command, repo / "results.tsv", clean_env(workdir, train_seconds), log=workdir / "output.log")
    logs = sorted((repo / ".bashlogs").glob("*.log"))
    return _check(_loop_run("bash", "sed SEED", iterations, train_seconds, watched, logs))


def local(workdir: Path, iterations: int, train_seconds: float, proposer: str = "mutate") -> LoopRun:
    """`autoresearch run` in this interpreter; proposer `slow` goes through bench/slow_proposer.py."""
    repo = make_repo(workdir / "exp", hard_timeout(train_seconds))
    launcher = [str(BENCH / "slow_proposer.py")] if proposer == "slow" else ["-m", "autoresearch.cli"]
    command = [
        sys.executable,
        *launcher,
        "run",
        "--repo",
        str(repo),
        "--tag",
        TAG,
        "--iterations",
        str(iterations),
        "--proposer",
        proposer,
    ]
    watched = run_watched(command, repo / "results.tsv", clean_env(workdir, train_seconds), log=workdir / "output.log")
    logs = sorted((repo / ".autoresearch" / "logs" / TAG).glob("*.log"))
    return _check(_loop_run("local", proposer, iterations, train_seconds, watched, logs))


def deployed(workdir: Path, iterations: int, train_seconds: float, proposer: str = "mutate") -> LoopRun:
    """`autoresearch run --deployed --wait` against a fresh server with 2 CPU training slots (bench/stack.py)."""
    if proposer != "mutate":
        raise ValueError("deployed mode is measured with mutate only (the slow stand-in is registered in-process)")
    repo = make_repo(workdir / "exp", hard_timeout(train_seconds))
    with prefect_stack(workdir, clean_env(workdir, train_seconds)) as env:
        command = [*CLI, "run", "--deployed", "--wait", "--repo", str(repo), "--tag", TAG, "--iterations", str(iterations)]
        watched = run_watched(command, repo / "results.tsv", env, log=workdir / "output.log")
    logs = sorted((repo / ".autoresearch" / "logs" / TAG).glob("*.log"))
    return _check(_loop_run("deployed", proposer, iterations, train_seconds, watched, logs))


MODES: dict[str, Callable[..., LoopRun]] = {"bash": bash, "local": local, "deployed": deployed}


def measure(mode: str, iterations: int, train_seconds: float, proposer: str = "mutate") -> LoopRun:
    """One loop of `mode` in a temporary directory, with the load average around it."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{mode}-") as workdir:
        load = os.getloadavg()[0]
        run = MODES[mode](Path(workdir), iterations, train_seconds, proposer=proposer)
    run.loadavg = round((load + os.getloadavg()[0]) / 2, 2)
    return run


def _loop_run(mode: str, proposer: str, iterations: int, train_seconds: float, watched, logs: list[Path]) -> LoopRun:
    return LoopRun(
        mode=mode,
        proposer=proposer,
        iterations=iterations,
        train_seconds=train_seconds,
        wall=watched.wall,
        row_times=watched.row_times,
        training=[training_seconds(log) for log in logs],
        row_rss_kb=watched.row_rss_kb,
        returncode=watched.returncode,
        output_tail=watched.output_tail,
    )


def environment() -> dict:
    """What the numbers were measured on."""
    import platform

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=BENCH, capture_output=True, text=True, check=False
    ).stdout.strip()
    try:
        from importlib.metadata import version

        prefect = version("prefect")
    except Exception:  # noqa: BLE001  (bash-only runs need no Prefect)
        prefect = None
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "prefect": prefect,
        "commit": commit,
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }
