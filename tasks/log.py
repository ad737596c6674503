from __future__ import annotations

from autoresearch.tasks.spec import iteration_cache_key
from prefect import task

from autoresearch import ledger
from autoresearch.errors import UserError
from autoresearch.iteration import Iteration
from autoresearch.models import Decision, LedgerRow, Metrics


@task(name="log", persist_result=True, cache_key_fn=iteration_cache_key)
def log(spec: Iteration, commit: str, description: str, verdict: Decision, metrics: Metrics | None) -> LedgerRow:
    """Append this iteration's row to results.tsv, once: row N belongs to iteration N (a window's rows: the loop, in start order)."""
    ws = spec.workspace()
    crashed = verdict.status == "crash"
    row = LedgerRow(
        commit=commit[:7],
        value=0.0 if crashed or metrics is None else round(metrics.value, 6),
        memory_gb=0.0 if crashed or metrics is None else (metrics.memory_mb or 0.0) / 1024,
        status=verdict.status,
        description=description,
    )
    ws.record("reasons", row.commit, verdict.reason)  # for the prompt's history (results.tsv keeps 5 columns)
    rows = ledger.read(ws.ledger_path, ws.config.metric)
    if len(rows) > spec.iteration:
        if rows[spec.iteration].commit[:7] != row.commit:
            raise UserError(
                f"results.tsv row {spec.iteration + 1} names {rows[spec.iteration].commit}, not {row.commit}; "
                "was the file edited while the loop ran?"
            )
        return rows[spec.iteration]
    if len(rows) < spec.iteration:
        raise UserError(f"results.tsv has {len(rows)} rows but iteration {spec.iteration} is logging; restore the file")
    ledger.append(ws.ledger_path, row)
    return row
