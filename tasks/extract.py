from __future__ import annotations

from autoresearch.tasks.spec import iteration_cache_key
from prefect import task

from autoresearch.iteration import Iteration
from autoresearch.metrics import extract as extract_metrics
from autoresearch.models import Metrics, TrainResult


@task(name="extract", persist_result=True, cache_key_fn=iteration_cache_key)
def extract(spec: Iteration, result: TrainResult) -> Metrics:
    """The metric and memory lines of run.log, read as a stream (never the whole log)."""
    config = spec.workspace().config
    return extract_metrics(result.log_path, config.metric, config.memory_metric)
