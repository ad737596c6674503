"""The bundled tiny experiment: prepare.py builds its data deterministically and atomically, train.py
trains for its time budget and prints karpathy's summary block. Real subprocesses, a few seconds each."""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # real torch in every subprocess: seconds each

EXPERIMENT = Path(__file__).resolve().parents[1] / "experiments" / "tiny"
SUMMARY_KEYS = [
    "val_bpb",
    "training_seconds",
    "total_seconds",
    "peak_vram_mb",
    "mfu_percent",
    "total_tokens_M",
    "num_steps",
    "num_params_M",
    "depth",
]


def run(script: str, cwd: Path, cache: Path, *args: str, budget: int | None = None, timeout: float = 120):
    env = {**os.environ, "AUTORESEARCH_CACHE": str(cache)}
    if budget is not None:
        env["AUTORESEARCH_TIME_BUDGET"] = str(budget)
    return subprocess.run([sys.executable, script, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def parse_summary(stdout: str) -> dict[str, float]:
    lines = stdout.splitlines()
    assert "---" in lines, stdout[-2000:]
    block = lines[len(lines) - 1 - lines[::-1].index("---") + 1 :]
    summary = {}
    for line in block:
        key, _, value = line.partition(":")
        summary[key] = float(value)
    return summary


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    cache = tmp_path_factory.mktemp("tiny") / "cache"
    result = run("prepare.py", EXPERIMENT, cache)
    assert result.returncode == 0, result.stderr
    return cache


@pytest.fixture
def experiment(tmp_path: Path) -> Path:
    """A copy of the experiment, as the research loop's worktree would hold it."""
    copy = tmp_path / "exp"
    shutil.copytree(EXPERIMENT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_prepare_is_deterministic_idempotent_and_atomic(prepared: Path, tmp_path: Path):
    assert {p.name for p in prepared.iterdir()} == {"train.bin", "val.bin", "meta.json"}
    assert [p.name for p in prepared.parent.iterdir()] == ["cache"]  # no temp dirs left behind
    assert (prepared / "train.bin").stat().st_size > 1_000_000
    assert (prepared / "val.bin").stat().st_size > 100_000
    before = digest(prepared)
    mtime = (prepared / "train.bin").stat().st_mtime_ns

    again = run("prepare.py", EXPERIMENT, prepared)
    assert again.returncode == 0, again.stderr
    assert "already prepared" in again.stdout
    assert (prepared / "train.bin").stat().st_mtime_ns == mtime

    other = tmp_path / "nested" / "cache"
    fresh = run("prepare.py", EXPERIMENT, other)
    assert fresh.returncode == 0, fresh.stderr
    assert digest(other) == before


def test_prepare_text_dir(tmp_path: Path):
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    texts = {f"sub/doc{i}.txt" if i % 2 else f"doc{i}.txt": f"document {i}: " + "lorem ipsum dolor " * 40 for i in range(30)}
    for rel, text in texts.items():
        (corpus / rel).write_text(text)
    cache = tmp_path / "cache"
    result = run("prepare.py", EXPERIMENT, cache, "--text-dir", str(corpus))
    assert result.returncode == 0, result.stderr
    data = (cache / "train.bin").read_bytes() + (cache / "val.bin").read_bytes()
    assert data.count(b"\x00") == len(texts)  # one BOS before each document
    assert sorted(data.split(b"\x00")[1:]) == sorted(t.encode() for t in texts.values())

    # the stdlib corpus replaces a text-dir one in the same cache, atomically
    result = run("prepare.py", EXPERIMENT, cache)
    assert result.returncode == 0, result.stderr
    assert b"lorem ipsum" not in (cache / "train.bin").read_bytes()
    assert [p.name for p in tmp_path.iterdir() if p.name != "corpus"] == ["cache"]


def test_evaluate_bpb_of_a_uniform_model_is_eight_bits(prepared: Path, monkeypatch):
    import torch

    monkeypatch.setenv("AUTORESEARCH_CACHE", str(prepared))
    spec = importlib.util.spec_from_file_location("tiny_prepare_under_test", EXPERIMENT / "prepare.py")
    prepare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prepare)

    class Uniform(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = torch.nn.Parameter(torch.zeros(256))

        def forward(self, x, y, reduction="mean"):
            logits = self.bias.expand(*x.shape, 256)
            return torch.nn.functional.cross_entropy(logits.reshape(-1, 256), y.reshape(-1), reduction=reduction)

    tokenizer = prepare.Tokenizer.from_directory()
    assert prepare.evaluate_bpb(Uniform(), tokenizer, 32) == pytest.approx(8.0, abs=1e-5)
    x, y, epoch = next(prepare.make_dataloader(tokenizer, 4, prepare.MAX_SEQ_LEN, "train"))
    assert x.shape == y.shape == (4, prepare.MAX_SEQ_LEN) and torch.equal(x[:, 1:], y[:, :-1])


@pytest.fixture(scope="module")
def trained(prepared: Path, tmp_path_factory) -> subprocess.CompletedProcess:
    """One training of the experiment as it is, with a 3 s budget, on an idle machine (as idle as it gets)."""
    copy = tmp_path_factory.mktemp("trained") / "exp"
    shutil.copytree(EXPERIMENT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return run("train.py", copy, prepared, budget=3, timeout=300)  # a compute budget: slow on a busy machine


def test_train_prints_summary_within_budget(trained: subprocess.CompletedProcess):
    result = trained
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "step 00001 (" in result.stdout
    summary = parse_summary(result.stdout)
    assert list(summary) == SUMMARY_KEYS
    assert math.isfinite(summary["val_bpb"]) and 0 < summary["val_bpb"] < 8
    budget_steps = int(re.search(r"^CPU budget: (\d+) steps of [\d.]+ GFLOP each", result.stdout, re.M)[1])
    assert summary["num_steps"] == budget_steps >= 1 and summary["peak_vram_mb"] > 0


def test_train_without_data_names_prepare(experiment: Path, tmp_path: Path):
    result = run("train.py", experiment, tmp_path / "missing", budget=3)
    assert result.returncode != 0
    assert "autoresearch prepare" in result.stderr


def test_the_cpu_budget_is_compute_so_a_cpu_hog_does_not_change_the_result(
    prepared: Path, experiment: Path, trained: subprocess.CompletedProcess
):
    """Same commit, idle and with every core burnt by other processes: the same steps, the same val_bpb."""
    idle = trained
    assert idle.returncode == 0, idle.stderr[-2000:]
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
    try:
        loaded = run("train.py", experiment, prepared, budget=3, timeout=300)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    a, b = parse_summary(idle.stdout), parse_summary(loaded.stdout)
    assert a["num_steps"] == b["num_steps"] and a["val_bpb"] == b["val_bpb"], (a, b)
