"""What every task of one iteration needs to know, and the cache key that makes re-runs skip done work."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from prefect.context import TaskRunContext
from prefect.utilities.hashing import hash_objects
from pydantic import BaseModel

from autoresearch.workspace import Workspace


class CrashInfo(BaseModel):
    """A crashed experiment that the next iteration tries to fix (at most MAX_FIX_ATTEMPTS in a row)."""

    commit: str  # full hash of the crashed experiment commit: the fix's parent
    iteration: int  # its row, and its run.log under .autoresearch/logs/
    description: str  # the idea being fixed
    reason: str  # why it crashed
    attempt: int  # 1 .. MAX_FIX_ATTEMPTS


MAX_FIX_ATTEMPTS = 2


class IterationSpec(BaseModel):
    repo: str
    tag: str
    loop_id: str
    iteration: int
    baseline_commit: str
    baseline_value: float | None = None  # None: this iteration is the baseline run
    proposer: str = "mutate"
    time_budget: int | None = None
    overrides: dict[str, Any] = {}
    resume_commit: str | None = None  # an experiment committed by an earlier, interrupted attempt
    slot: int = 0  # local mode's training slot (deployed: the GPU worker's own)
    deployed: bool = False  # train on the gpu work pool (train-on-gpu runs) instead of in this process
    remote: str | None = None  # git URL that GPU workers fetch experiment commits from (default: the repo's path)
    round_start: int | None = None  # --parallel: first iteration of this round; all share the baseline
    round_size: int = 1
    prefetch: bool = True  # local mode: propose the next idea while this one trains

    @property
    def in_round(self) -> bool:
        return self.round_size > 1

    # --- proposers, crash fixes, noise (issue 4) ---
    proposer_options: dict[str, Any] = {}  # --model, --agent-command, ... (JSON values; part of the cache key)
    fix_of: CrashInfo | None = None  # this iteration is a fix attempt of a crashed experiment
    noise_repeat: int | None = None  # this iteration re-trains the unmodified baseline (noise.py)
    sigma: float | None = None  # measured baseline noise: keeps need max(small_gain, 2 sigma)
    confirm: bool = False  # re-train a would-be keep once; keep only if both runs pass

    @property
    def parent_commit(self) -> str:
        """What this iteration's commit builds on: the crashed commit for a fix, else the baseline."""
        return self.fix_of.commit if self.fix_of else self.baseline_commit

    @property
    def is_baseline(self) -> bool:
        return self.baseline_value is None

    def workspace(self) -> Workspace:
        return _workspace(self.repo, self.tag, json.dumps(self.overrides, sort_keys=True))


def round_timeout(spec: IterationSpec) -> float:
    """How long a round's candidate waits for its siblings: each may queue behind the others for a slot."""
    return spec.round_size * (spec.workspace().config.timeout_seconds + 300.0) + 600.0


@lru_cache(maxsize=8)
def _workspace(repo: str, tag: str, overrides: str) -> Workspace:
    return Workspace(repo, tag, json.loads(overrides))


def iteration_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Stable across attempts of the same iteration: loop, tag, iteration, baseline and the task's inputs.

    `resume_commit` is left out on purpose, so a resumed iteration finds what its first attempt persisted.
    """
    spec: IterationSpec = parameters["spec"]
    identity = spec.model_dump(include={"repo", "loop_id", "proposer", "proposer_options"})
    inputs = {k: v.model_dump(mode="json") if isinstance(v, BaseModel) else v for k, v in parameters.items() if k != "spec"}
    digest = hash_objects(identity, inputs, context.task.name)
    return f"{spec.tag}-{spec.iteration:04d}-{spec.baseline_commit[:12]}-{context.task.name}-{digest}"
