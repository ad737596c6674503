"""The flow that GPU workers run: one training of one experiment commit on this worker's slot."""

from __future__ import annotations

from prefect import flow
from prefect.runtime import flow_run

from autoresearch import train_report
from autoresearch.slot_turn import SlotTurn
from autoresearch.training_job import TrainReport, TrainRequest, current_slot, run_training_job


@flow(name="train-on-gpu")
def train_on_gpu(request: TrainRequest) -> TrainReport:
    """Checkout at the commit in a worktree of this slot's, wait for the slot, run under the hard timeout,
    archive run.log. The worker holds two runs per slot: this one may start while the slot still trains.

    The slot comes from AUTORESEARCH_SLOT, set by `autoresearch worker` next to CUDA_VISIBLE_DEVICES.
    A training that exits non-zero or times out is a normal result (the iteration logs a crash row);
    only a failure to run it at all fails this flow run. The report goes back through the API (an
    artifact), never through storage shared with the loop's host.
    """
    slot = current_slot()
    report = run_training_job(request, slot, turn=SlotTurn(slot))
    train_report.publish(report, flow_run.id)
    return report
