from __future__ import annotations

from autoresearch.tasks.spec import IterationSpec, iteration_cache_key, round_timeout
from prefect import task

from autoresearch import ledger
from autoresearch.errors import UserError
from autoresearch.models import Decision, LedgerRow, Metrics
from autoresearch.rounds import wait_for_turn


@task(name="log", persist_result=True, cache_key_fn=iteration_cache_key)
def log(spec: IterationSpec, commit: str, description: str, verdict: Decision, metrics: Metrics | None) -> LedgerRow:
    """Append this iteration's row to results.tsv, once: row N belongs to iteration N."""
    ws = spec.workspace()
    crashed = verdict.status == "crash"
    row = LedgerRow(
        commit=commit[:7],
        value=0.0 if crashed or metrics is None else round(metrics.value, 6),
        memory_gb=0.0 if crashed or metrics is None else (metrics.memory_mb or 0.0) / 1024,
        status=verdict.status,
        description=description,
    )
    if spec.in_round:
        wait_for_turn(lambda: len(ledger.read(ws.ledger_path, ws.config.metric)), spec.iteration, round_timeout(spec))
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
