"""`autoresearch worker`: one Prefect process worker per GPU slot (CUDA_VISIBLE_DEVICES set; two runs at a
time, one training and the next one started and waiting for the slot: autoresearch/slot_turn.py), plus one
for the cpu pool; restarts a worker that dies; stops them all cleanly on Ctrl-C.

A Prefect worker ignores the first SIGINT/SIGTERM (it forwards it to its runs and waits), so a stop
sends one, waits, sends a second, waits, then kills.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

from autoresearch.deployments.definitions import CPU_POOL, GPU_POOL
from autoresearch.errors import UserError
from autoresearch.slot_turn import RUNS_PER_SLOT
from autoresearch.supervisor import signal_on_parent_death
from autoresearch.training_job import SLOT_ENV

STOP_WAIT_SECONDS = 10.0
# The workers and the runs they start (the loop, its iterations, trainings) ride out a server that answers
# 503 for minutes (SQLite busy under many slots): Prefect's client retries 2, 4, ... 256 s (~8.5 min in all)
# instead of its default 5 retries (~1 min). A value in the worker's own environment wins.
PATIENT_CLIENT = {"PREFECT_CLIENT_MAX_RETRIES": "8"}
RESTART_DELAY_SECONDS = 2.0
_GPU_ID = re.compile(r"^(\d+|GPU-[0-9a-fA-F-]+|MIG-[0-9a-fA-F-]+)$")


@dataclass(frozen=True)
class WorkerPlan:
    name: str
    pool: str
    limit: int | None  # concurrent runs; RUNS_PER_SLOT for a GPU slot (one trains, the next waits ready)
    env: dict[str, str] = field(default_factory=dict)

    def command(self) -> list[str]:
        limit = ["--limit", str(self.limit)] if self.limit else []
        return [
            sys.executable,
            "-m",
            "prefect",
            "worker",
            "start",
            "--pool",
            self.pool,
            "--name",
            self.name,
            "--type",
            "process",
            *limit,
        ]


def parse_gpus(text: str) -> list[str]:
    gpus = [part.strip() for part in text.split(",") if part.strip()]
    bad = [gpu for gpu in gpus if not _GPU_ID.match(gpu)]
    if not gpus or bad:
        raise UserError(f"invalid --gpus {text!r}: give device indices as listed by nvidia-smi, e.g. --gpus 0,1")
    if len(set(gpus)) != len(gpus):
        raise UserError(f"--gpus {text!r} names a GPU twice; two trainings must never share a GPU")
    return gpus


def detect_gpus() -> list[str]:
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [str(i) for i, line in enumerate(listing.splitlines()) if line.startswith("GPU ")]


def plan_workers(
    gpus: list[str] | None, slots: int | None, cpu: bool, first_slot: int = 0, host: str | None = None
) -> list[WorkerPlan]:
    """GPU slots get CUDA_VISIBLE_DEVICES and AUTORESEARCH_SLOT (their worktree); --slots N hides the GPUs."""
    host = host or socket.gethostname()
    if gpus is not None and slots is not None:
        raise UserError("pass either --gpus or --slots, not both")
    if slots is not None and slots < 0:
        raise UserError("--slots must be 0 or more")
    if gpus is None and slots is None:
        gpus = detect_gpus()
        if not gpus and not cpu:
            raise UserError("no GPU found (nvidia-smi lists none); pass --gpus 0,1, or --slots N to train on the CPU")
    plans = []
    for index, gpu in enumerate(gpus or []):
        plans.append(
            WorkerPlan(
                f"{host}-gpu{gpu}", GPU_POOL, RUNS_PER_SLOT, {"CUDA_VISIBLE_DEVICES": gpu, SLOT_ENV: str(first_slot + index)}
            )
        )
    for index in range(slots or 0):
        plans.append(
            WorkerPlan(
                f"{host}-slot{first_slot + index}",
                GPU_POOL,
                RUNS_PER_SLOT,
                {"CUDA_VISIBLE_DEVICES": "", SLOT_ENV: str(first_slot + index)},
            )
        )
    if cpu:
        plans.append(WorkerPlan(f"{host}-cpu", CPU_POOL, None))
    if not plans:
        raise UserError("nothing to start: give --gpus or --slots N (N > 0), or leave --cpu on")
    return plans


def worker_env(plan: WorkerPlan, inherited: dict[str, str], query_seconds: float | None = None) -> dict[str, str]:
    """The worker's environment (its runs inherit it): a patient Prefect client unless set, the slot's variables."""
    env = {**PATIENT_CLIENT, **inherited, **plan.env}
    if query_seconds:
        env["PREFECT_WORKER_QUERY_SECONDS"] = str(query_seconds)
    return env


class WorkerGroup:
    def __init__(self, plans: list[WorkerPlan], query_seconds: float | None = None, echo=print) -> None:
        self.plans = plans
        self.query_seconds = query_seconds
        self.echo = echo
        self.processes: dict[str, subprocess.Popen] = {}
        self.stopping = False

    def _start(self, plan: WorkerPlan) -> None:
        env = worker_env(plan, dict(os.environ), self.query_seconds)
        self.processes[plan.name] = subprocess.Popen(
            plan.command(), env=env, stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=signal_on_parent_death
        )
        self.echo(f"started worker {plan.name} (pool {plan.pool}, pid {self.processes[plan.name].pid})")

    def run(self) -> int:
        """Start every worker, restart any that dies, until SIGINT/SIGTERM; then stop them all."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._request_stop)
        try:
            for plan in self.plans:
                self._start(plan)
            while not self.stopping:
                for plan in self.plans:
                    code = self.processes[plan.name].poll()
                    if code is not None and not self.stopping:
                        self.echo(f"worker {plan.name} exited with code {code}; restarting it in {RESTART_DELAY_SECONDS:.0f} s")
                        time.sleep(RESTART_DELAY_SECONDS)
                        if not self.stopping:
                            self._start(plan)
                time.sleep(0.5)
        finally:
            self.stop()
        return 0

    def _request_stop(self, *_: object) -> None:
        self.stopping = True

    def stop(self) -> None:
        """Two signals (a worker ignores the first while it hands it to its runs), then SIGKILL."""
        alive = [p for p in self.processes.values() if p.poll() is None]
        for _ in range(2):
            for process in alive:
                _signal(process, signal.SIGINT)
            alive = _wait_all(alive, STOP_WAIT_SECONDS)
            if not alive:
                break
        for process in alive:
            _signal(process, signal.SIGKILL)
            process.wait()
        if self.processes:
            self.echo(f"stopped {len(self.processes)} worker(s)")
        self.processes.clear()


def _signal(process: subprocess.Popen, sig: int) -> None:
    try:
        process.send_signal(sig)
    except ProcessLookupError:
        pass


def _wait_all(processes: list[subprocess.Popen], seconds: float) -> list[subprocess.Popen]:
    until = time.monotonic() + seconds
    while time.monotonic() < until and any(p.poll() is None for p in processes):
        time.sleep(0.2)
    return [p for p in processes if p.poll() is None]
