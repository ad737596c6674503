"""A training's report travels from the GPU host to the loop through the Prefect API, as an artifact of
the train-on-gpu run: the two hosts share nothing else but the git remote (no filesystem, no result
storage). The artifact's type is our own, so the loop finds it among the run's progress artifacts."""

from __future__ import annotations

import json
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import ArtifactCreate
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterType

from autoresearch.training_job import TrainReport

REPORT_TYPE = "autoresearch-train-report"


class ReportMissing(Exception):
    """The run completed but its report never reached the API."""


def publish(report: TrainReport, flow_run_id: UUID) -> None:
    with get_client(sync_client=True) as client:
        client.create_artifact(
            ArtifactCreate(
                type=REPORT_TYPE,
                data=report.model_dump(mode="json"),
                description=f"training report: exit {report.exit_code}, {report.seconds:.1f} s on {report.host} slot {report.slot}",
                flow_run_id=flow_run_id,
            )
        )


def fetch(flow_run_id: UUID) -> TrainReport:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]), type=ArtifactFilterType(any_=[REPORT_TYPE])
            )
        )
    if not found:
        raise ReportMissing(f"train-on-gpu run {flow_run_id} completed without a training report")
    data = found[-1].data
    return TrainReport.model_validate(json.loads(data) if isinstance(data, str) else data)
