"""Check the bundled experiment's CUDA path and the hard training timeout on a real GPU.

Needs only the standard library and torch (so it runs on a bare GPU box without Prefect):
    python3 bench/gpu_check.py [--budget 60] [--out bench/results/gpu_check.json]
1. prepares the tiny corpus into a temporary cache, 2. trains for --budget seconds through the
runner (own process group, log file) and reads the summary, 3. starts a training with a 20 s hard
timeout and a 300 s budget and checks that it is killed and that no process of its group is left.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from autoresearch.runner import run_command  # noqa: E402  (standard library only)

TINY = ROOT / "experiments" / "tiny"
SUMMARY = re.compile(r"^(\w+):\s+([-\d.eE+naif]+)\s*$")


def summary(log: Path) -> dict[str, float]:
    values = {}
    for line in log.read_text(errors="replace").splitlines():
        match = SUMMARY.match(line)
        if match:
            values[match.group(1)] = float(match.group(2))
    return values


def gpu_processes() -> list[str]:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid,process_name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ["nvidia-smi unavailable"]
    return [line for line in out.splitlines() if line.strip()]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--budget", type=int, default=60)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "gpu_check.json"))
    args = parser.parse_args()
    import torch

    report: dict[str, object] = {
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "device_name": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "tiny"
        subprocess.run(["cp", "-r", str(TINY), str(work)], check=True)
        env = {"AUTORESEARCH_CACHE": str(Path(tmp) / "cache")}
        started = time.monotonic()
        subprocess.run([sys.executable, "prepare.py"], cwd=work, env={**os.environ, **env}, check=True)
        report["prepare_seconds"] = round(time.monotonic() - started, 1)

        log = work / "run.log"
        run = run_command(
            f"{sys.executable} train.py",
            cwd=work,
            log_path=log,
            timeout=args.budget + 120,
            env={**env, "AUTORESEARCH_TIME_BUDGET": str(args.budget)},
        )
        report["train"] = {
            "budget": args.budget,
            "exit_code": run.exit_code,
            "timed_out": run.timed_out,
            "wall_seconds": round(run.seconds, 1),
            "summary": summary(log),
        }
        report["train_log_head"] = log.read_text(errors="replace").splitlines()[:3]
        if run.exit_code != 0:
            report["train_log_tail"] = log.read_text(errors="replace").splitlines()[-30:]

        record = Path(tmp) / "training.json"
        run = run_command(
            f"{sys.executable} train.py",
            cwd=work,
            log_path=log,
            timeout=20,
            env={**env, "AUTORESEARCH_TIME_BUDGET": "300"},
            record=record,
        )
        time.sleep(2)
        leftovers = subprocess.run(["pgrep", "-f", "train.py"], capture_output=True, text=True).stdout.split()
        report["timeout"] = {
            "exit_code": run.exit_code,
            "timed_out": run.timed_out,
            "wall_seconds": round(run.seconds, 1),
            "leftover_train_pids": leftovers,
            "gpu_processes_after": gpu_processes(),
            "log_tail": log.read_text(errors="replace").splitlines()[-2:],
        }
    text = json.dumps(report, indent=2)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
