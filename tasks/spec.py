"""The cache key that makes a re-run of an iteration skip the tasks its earlier attempt completed."""

from __future__ import annotations

from typing import Any

from prefect.context import TaskRunContext
from prefect.utilities.hashing import hash_objects
from pydantic import BaseModel

from autoresearch.iteration import Iteration


def iteration_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Stable across attempts of the same iteration: loop, tag, iteration, baseline and the task's inputs.

    The iteration's kind is left out on purpose, so a resumed iteration finds what its first attempt persisted.
    """
    spec: Iteration = parameters["spec"]
    identity = spec.loop.model_dump(include={"repo", "loop_id", "proposer", "proposer_options"})
    inputs = {k: v.model_dump(mode="json") if isinstance(v, BaseModel) else v for k, v in parameters.items() if k != "spec"}
    digest = hash_objects(identity, inputs, context.task.name)
    return f"{spec.loop.tag}-{spec.iteration:04d}-{spec.baseline_commit[:12]}-{context.task.name}-{digest}"
