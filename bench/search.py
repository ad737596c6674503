"""Search quality with a known answer: true regret, keeps and false keeps per proposer and setting.

    python -m bench.search                # 10 seeds x 40 iterations, every setting (~1-2 minutes on 2 cores)
    python -m bench.search --seeds 5 --iterations 20

The experiment is a train.py whose val_bpb is a known function of its UPPER_CASE constants (rates on a
log scale, sizes, three constants that do not matter; the optimum 0.900000 lies inside the search
box) plus Gaussian noise of sigma BENCH_SIGMA. It prints the noiseless value as `true_bpb:`, which the
loop never reads: the bench uses it to score what the loop kept. Two problems: `plain` (each constant on
its own) and `interacting` (MATRIX_LR's optimum moves with BATCH_SIZE, EMBED_LR's with WEIGHT_DECAY).

How the loop is driven: in this process, with the product's own pieces and none of its orchestration.
Each iteration asks the real proposer (ProposalContext as the hypothesize task builds it), applies the
edits with autoresearch.edits, runs train.py's source in-process (exec, output to a run.log that
autoresearch.metrics.extract reads), decides with autoresearch.decision.judge and autoresearch.noise (the
same thresholds, noise repeats and --confirm rules as the experiment-iteration flow) and appends the row
to a real results.tsv with autoresearch.ledger; the next proposal reads it back. Git and Prefect are
left out: a full flow costs about a second per iteration, and 3,000+ iterations must fit in minutes.
Commits are content hashes of the editable files; complexity is counted with difflib (every edit here
rewrites one line per constant, so it is 0, as git numstat would say).

Scores, per problem, sigma and setting (over seeds): regret = true value of the kept baseline minus the
optimum, after 10, 20 and 40 iterations (noise repeats are setup, not iterations, as in the loop);
keeps per loop (the baseline not counted); false-keep rate = keeps whose true value is not better
than the previous keep's true value, over all keeps; runs = training runs per loop (repeats and confirm
runs included). Table to stdout, JSON to bench/results/search.json.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import hashlib
import io
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from autoresearch import decision, ledger, noise
from autoresearch.config import ExperimentConfig
from autoresearch.edits import apply_edits
from autoresearch.metrics import extract
from autoresearch.models import Decision, LedgerRow, ProposalContext
from autoresearch.proposers import ProposerExhausted, get_proposer

RESULTS = Path(__file__).parent / "results" / "search.json"
METRIC = "val_bpb"
OPTIMUM = 0.9
SMALL_GAIN, BIG_GAIN, MAJOR_LINES = 0.001, 0.005, 20  # the product's defaults (autoresearch.toml)
SIGMAS = (0.0, 0.005)  # 0.005: about a typical true gain of a keep (mutate's median at sigma 0 is 0.006-0.007)
CHECKPOINTS = (10, 20, 40)

HEADER = '''\
"""Search benchmark experiment: val_bpb is a known function of the constants below, plus Gaussian noise."""
import math
import os
import random

MATRIX_LR = 0.01  # best 0.04 (plain)
EMBED_LR = 0.6  # best 0.2 (plain)
WEIGHT_DECAY = 0.02  # best 0.1 (plain)
WARMUP_RATIO = 0.3  # best 0.1
DEPTH = 4  # best 6
BATCH_SIZE = 32  # best 128
ADAM_EPS = 1e-8  # does not matter
GRAD_CLIP = 1.0  # does not matter
LOG_EVERY = 100  # does not matter

ln, log2 = math.log, math.log2
'''
PLAIN = """\
true = (0.9 + 0.02 * ln(MATRIX_LR / 0.04) ** 2 + 0.01 * ln(EMBED_LR / 0.2) ** 2 + 0.005 * ln(WEIGHT_DECAY / 0.1) ** 2
        + 0.01 * ln(WARMUP_RATIO / 0.1) ** 2 + 0.004 * (DEPTH - 6) ** 2 + 0.005 * log2(BATCH_SIZE / 128) ** 2)
"""
INTERACTING = """\
batch = ln(BATCH_SIZE / 128)  # the best MATRIX_LR grows with sqrt(BATCH_SIZE); EMBED_LR trades off against WEIGHT_DECAY
true = (0.9 + 0.05 * (ln(MATRIX_LR / 0.04) - 0.5 * batch) ** 2 + 0.005 * log2(BATCH_SIZE / 128) ** 2
        + 0.03 * (ln(EMBED_LR / 0.2) + ln(WEIGHT_DECAY / 0.1)) ** 2 + 0.003 * ln(WEIGHT_DECAY / 0.1) ** 2
        + 0.01 * ln(WARMUP_RATIO / 0.1) ** 2 + 0.004 * (DEPTH - 6) ** 2)
"""
FOOTER = """\
sigma = float(os.environ.get("BENCH_SIGMA", "0"))
noise = random.Random(os.environ.get("BENCH_NOISE_KEY", "0")).gauss(0.0, sigma) if sigma else 0.0
print("---")
print(f"val_bpb:          {true + noise:.6f}")
print(f"true_bpb:         {true:.6f}")
print(f"peak_vram_mb:     {256.0 * DEPTH:.1f}")
"""
PROBLEMS = {"plain": HEADER + PLAIN + FOOTER, "interacting": HEADER + INTERACTING + FOOTER}


@dataclass(frozen=True)
class Setting:
    name: str
    proposer: str
    noise_repeats: int = 0
    confirm: bool = False
    small_gain: float = SMALL_GAIN  # 0.01: twice the noisy sigma, as if the user knew it
    big_gain: float = BIG_GAIN


SETTINGS = (
    Setting("mutate", "mutate"),
    Setting("mutate, noise_repeats 2", "mutate", noise_repeats=2),
    Setting("mutate, noise_repeats 5", "mutate", noise_repeats=5),
    Setting("mutate, --confirm", "mutate", confirm=True),
    Setting("mutate, noise_repeats 2, --confirm", "mutate", noise_repeats=2, confirm=True),
    Setting("mutate, noise_repeats 5, --confirm", "mutate", noise_repeats=5, confirm=True),
    Setting("mutate, small_gain = big_gain = 0.01, --confirm", "mutate", confirm=True, small_gain=0.01, big_gain=0.01),
    Setting("optuna", "optuna"),
    Setting("optuna, --confirm", "optuna", confirm=True),
    Setting("optuna, noise_repeats 2, --confirm", "optuna", noise_repeats=2, confirm=True),
)


@dataclass
class Loop:
    """One loop's trace: the true value of the kept baseline after each iteration, and what each keep was worth."""

    kept_true: list[float] = field(default_factory=list)  # index i: after iteration i (0: the baseline)
    keeps: int = 0
    false_keeps: int = 0
    keep_gains: list[float] = field(default_factory=list)  # true gain of each keep over the previous keep
    runs: int = 0
    exhausted: bool = False

    def regret(self, iteration: int) -> float:
        return self.kept_true[min(iteration, len(self.kept_true) - 1)] - OPTIMUM


class Trainer:
    """Runs the experiment's train.py source in this process, its output to a run.log read by metrics.extract."""

    def __init__(self, workdir: Path, sigma: float, seed: int) -> None:
        self.workdir, self.sigma, self.seed, self.runs = workdir, sigma, seed, 0

    def __call__(self, source: str) -> tuple[float, float]:
        self.runs += 1
        os.environ.update(BENCH_SIGMA=repr(self.sigma), BENCH_NOISE_KEY=f"{self.seed}:{self.runs}")
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            exec(compile(source, "train.py", "exec"), {"__name__": "__main__"})
        log = self.workdir / "run.log"
        log.write_text(output.getvalue())
        value = extract(log, METRIC, "peak_vram_mb").value
        truth = extract(log, "true_bpb", "peak_vram_mb").value
        assert value is not None and truth is not None, output.getvalue()
        return value, truth


def commit_of(files: dict[str, str]) -> str:
    return hashlib.sha1(json.dumps(files, sort_keys=True).encode()).hexdigest()


def complexity(old: str, new: str) -> int:
    """Lines added minus lines removed, as git numstat counts them."""
    diff = list(difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0))
    added = sum(1 for line in diff if line.startswith("+") and not line.startswith("+++"))
    removed = sum(1 for line in diff if line.startswith("-") and not line.startswith("---"))
    return added - removed


class Experiment:
    """One loop's state: files at the baseline, the ledger, sigma from the repeats."""

    def __init__(self, workdir: Path, problem: str, setting: Setting, sigma: float, seed: int) -> None:
        self.setting, self.seed = setting, seed
        self.config = ExperimentConfig(
            small_gain=setting.small_gain, big_gain=setting.big_gain, major_lines=MAJOR_LINES, noise_repeats=setting.noise_repeats
        )
        self.train = Trainer(workdir, sigma, seed)
        self.files = {"train.py": PROBLEMS[problem]}
        self.path = workdir / "results.tsv"
        self.path.unlink(missing_ok=True)
        ledger.create(self.path, METRIC)
        self.trace = Loop()
        self.baseline_value, self.baseline_true = self._setup()
        self.sigma_hat = noise.sigma(ledger.read(self.path, METRIC))

    def log(self, status: str, value: float, description: str, files: dict[str, str]) -> None:
        row = LedgerRow(commit=commit_of(files)[:7], value=round(value, 6), memory_gb=0.2, status=status, description=description)
        ledger.append(self.path, row)

    def _setup(self) -> tuple[float, float]:
        value, truth = self.train(self.files["train.py"])
        self.log("keep", value, "baseline", self.files)
        for number in range(1, self.setting.noise_repeats + 1):
            repeat, _ = self.train(self.files["train.py"])
            verdict = decision.noise_repeat(number, round(repeat, 6), round(value, 6), "minimize")
            self.log(verdict.status, repeat, noise.repeat_description(number), {**self.files, "repeat": str(number)})
        self.trace.kept_true.append(truth)
        return round(value, 6), truth

    def decide(self, old: str, new: str, value: float) -> Decision:
        return decision.judge(round(value, 6), self.baseline_value, complexity(old, new), self.config, self.sigma_hat)

    def iterate(self, proposer, iteration: int) -> None:
        history = ledger.read(self.path, METRIC)
        context = ProposalContext(
            iteration=iteration,
            baseline_commit=commit_of(self.files),
            editable_files=self.files,
            history=history,
            seed=self.seed,
        )
        proposal = proposer.propose(context)
        edited = apply_edits(self.files, proposal.edits)
        if edited.refused:
            self.log("crash", 0.0, proposal.description, {**self.files, "refused": str(iteration)})
            self.trace.kept_true.append(self.trace.kept_true[-1])
            return
        new_files = {**self.files, **edited.files}
        old, new = self.files["train.py"], new_files["train.py"]
        value, truth = self.train(new)
        verdict = self.decide(old, new, value)
        if self.setting.confirm and verdict.status == "keep":
            second, _ = self.train(new)
            verdict = decision.confirm(verdict, self.decide(old, new, second), (value, second), None)
            value = (value + second) / 2
        self.log(verdict.status, value, proposal.description, new_files)
        if verdict.status == "keep":
            self._kept(new_files, round(value, 6), truth)
        self.trace.kept_true.append(self.baseline_true)

    def _kept(self, files: dict[str, str], value: float, truth: float) -> None:
        self.trace.keeps += 1
        self.trace.keep_gains.append(self.baseline_true - truth)
        if truth >= self.baseline_true:
            self.trace.false_keeps += 1
        self.files, self.baseline_value, self.baseline_true = files, value, truth


def run_loop(workdir: Path, problem: str, setting: Setting, sigma: float, seed: int, iterations: int) -> Loop:
    experiment = Experiment(workdir, problem, setting, sigma, seed)
    proposer = get_proposer(setting.proposer)
    for iteration in range(1, iterations + 1):
        try:
            experiment.iterate(proposer, iteration)
        except ProposerExhausted:
            experiment.trace.exhausted = True
            break
    experiment.trace.runs = experiment.train.runs
    return experiment.trace


def summarize(loops: list[Loop], seconds: float) -> dict:
    keeps = sum(loop.keeps for loop in loops)
    regret = {f"regret_median_{n}": round(statistics.median(loop.regret(n) for loop in loops), 6) for n in CHECKPOINTS}
    regret |= {f"regret_mean_{n}": round(statistics.fmean(loop.regret(n) for loop in loops), 6) for n in CHECKPOINTS}
    gains = [gain for loop in loops for gain in loop.keep_gains]
    return {
        **regret,
        "keeps_per_loop": round(keeps / len(loops), 2),
        "false_keeps": sum(loop.false_keeps for loop in loops),
        "keeps": keeps,
        "false_keep_rate": round(sum(loop.false_keeps for loop in loops) / keeps, 4) if keeps else None,
        "median_keep_gain": round(statistics.median(gains), 6) if gains else None,
        "runs_per_loop": round(statistics.fmean(loop.runs for loop in loops), 1),
        "exhausted_loops": sum(loop.exhausted for loop in loops),
        "seconds": round(seconds, 2),
    }


def measure_one(problem: str, sigma: float, setting: Setting, seeds: int, iterations: int) -> dict:
    """One row of the table: `seeds` loops of one setting (a worker process of its own)."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        loops = [run_loop(Path(tmp), problem, setting, sigma, seed, iterations) for seed in range(seeds)]
    row = {"problem": problem, "sigma": sigma, "setting": setting.name, **asdict(setting)}
    return row | summarize(loops, time.perf_counter() - started)


def measure(seeds: int, iterations: int, jobs: int, settings: tuple[Setting, ...] = SETTINGS) -> list[dict]:
    """Every problem x sigma x setting, `jobs` rows at a time; rows print in table order as they finish."""
    cases = [(problem, sigma, setting) for problem in PROBLEMS for sigma in SIGMAS for setting in settings]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(measure_one, *case, seeds, iterations) for case in cases]
        rows = []
        for future in futures:
            rows.append(future.result())
            print(_line(rows[-1]), flush=True)
    return rows


def _line(row: dict) -> str:
    rate = "-" if row["false_keep_rate"] is None else f"{100 * row['false_keep_rate']:.0f}% ({row['false_keeps']}/{row['keeps']})"
    regrets = " | ".join(f"{row[f'regret_median_{n}']:.4f}" for n in CHECKPOINTS)
    return (
        f"| {row['problem']} | {row['sigma']:g} | {row['setting']} | {regrets} | {row['keeps_per_loop']:.1f} | {rate} "
        f"| {row['runs_per_loop']:.0f} |"
    )


TABLE_HEAD = (
    "| problem | sigma | setting | median regret @10 | @20 | @40 | keeps/loop | false keeps | runs/loop |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description="Search quality on a problem with a known optimum.")
    parser.add_argument("--seeds", type=int, default=10, help="loops per setting (at least 5 for the table in docs)")
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="worker processes (default: 2)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    load = os.getloadavg()[0]
    print(TABLE_HEAD, flush=True)
    rows = measure(args.seeds, args.iterations, args.jobs)
    wall = time.perf_counter() - started
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = {
        "seeds": args.seeds,
        "iterations": args.iterations,
        "optimum": OPTIMUM,
        "thresholds": {"small_gain": SMALL_GAIN, "big_gain": BIG_GAIN},
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu.ru_utime + cpu.ru_stime, 1),  # all worker processes together
        "jobs": args.jobs,
        "loadavg_start": round(load, 2),
        "loadavg_end": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "rows": rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"\n{wall:.0f} s wall, {result['cpu_s']:.0f} s CPU in {args.jobs} processes "
        f"(load {load:.1f} -> {result['loadavg_end']:.1f}); JSON: {args.output}"
    )
    return result


if __name__ == "__main__":
    main()
