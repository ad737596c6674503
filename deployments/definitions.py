"""The deployments and work pools of deployed mode: names that users, the UI and
`prefect deployment run` rely on."""

from __future__ import annotations

from dataclasses import dataclass

CPU_POOL = "cpu"  # runs research-loop and experiment-iteration: cheap, many at a time
GPU_POOL = "gpu"  # runs train-on-gpu: one worker per GPU slot, one training at a time each (the next one waits ready)
DEPLOYMENT_NAME = "default"


@dataclass(frozen=True)
class DeploymentDefinition:
    flow_name: str
    entrypoint: str  # a module path (no colon): workers import it from the installed package
    pool: str
    description: str

    @property
    def full_name(self) -> str:
        return f"{self.flow_name}/{DEPLOYMENT_NAME}"


RESEARCH_LOOP = DeploymentDefinition(
    "research-loop",
    "autoresearch.flows.research_loop.research_loop",
    CPU_POOL,
    "The autoresearch loop: setup or resume, then experiment iterations (each its own run) until stopped.",
)
EXPERIMENT_ITERATION = DeploymentDefinition(
    "experiment-iteration",
    "autoresearch.flows.experiment_iteration.experiment_iteration",
    CPU_POOL,
    "One experiment: hypothesize, edit, commit, train (on the gpu pool), extract, evaluate, log, keep or reset.",
)
TRAIN_ON_GPU = DeploymentDefinition(
    "train-on-gpu",
    "autoresearch.flows.train_on_gpu.train_on_gpu",
    GPU_POOL,
    "One training run of one experiment commit on a GPU slot, under the hard timeout.",
)
DEPLOYMENTS = (RESEARCH_LOOP, EXPERIMENT_ITERATION, TRAIN_ON_GPU)
POOLS = (CPU_POOL, GPU_POOL)
