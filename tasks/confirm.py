from __future__ import annotations

from autoresearch.tasks.evaluate import evaluate
from autoresearch.tasks.spec import iteration_cache_key
from prefect import task
from pydantic import BaseModel

from autoresearch import decision
from autoresearch.iteration import Iteration
from autoresearch.models import Decision, Metrics, TrainResult


class Confirmed(BaseModel):
    verdict: Decision
    metrics: Metrics  # what the row records: the mean of both runs' values (the first's if the second crashed)


@task(name="confirm", persist_result=True, cache_key_fn=iteration_cache_key)
def confirm(
    spec: Iteration, commit: str, first: Decision, metrics: Metrics, result: TrainResult, second_metrics: Metrics
) -> Confirmed:
    """`--confirm`: the same commit trained a second time; keep only if both runs pass the decision table."""
    second = evaluate.fn(spec, commit, None, result, second_metrics)
    crashed = second.reason if second.status == "crash" else None
    verdict = decision.confirm(first, None if crashed else second, (metrics.value, second_metrics.value), crashed)
    if crashed or metrics.value is None or second_metrics.value is None:
        return Confirmed(verdict=verdict, metrics=metrics)
    mean = (metrics.value + second_metrics.value) / 2
    memory = max(metrics.memory_mb or 0.0, second_metrics.memory_mb or 0.0) or None
    return Confirmed(verdict=verdict, metrics=metrics.model_copy(update={"value": mean, "memory_mb": memory}))
