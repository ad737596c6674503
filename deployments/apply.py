"""`autoresearch deploy`: create (or update, identically) the work pools and the three deployments.

Idempotent: pools are created once and left as they are; deployments are upserted by (flow, name), and
the server replaces their schedules, so running it twice gives the same result as running it once.
"""

from __future__ import annotations

from typing import Any

from autoresearch.deployments.definitions import DEPLOYMENT_NAME, DEPLOYMENTS, POOLS, RESEARCH_LOOP, DeploymentDefinition
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import DeploymentScheduleCreate, WorkPoolCreate
from prefect.client.schemas.schedules import CronSchedule
from prefect.exceptions import ObjectAlreadyExists
from prefect.utilities.callables import parameter_schema
from prefect.utilities.importtools import import_object
from prefect.workers.process import ProcessWorker
from pydantic import BaseModel

from autoresearch.errors import UserError


class DeployResult(BaseModel):
    pools: list[str]
    deployments: dict[str, str]  # full name -> deployment id
    schedule: str | None = None


def deploy(loop_parameters: dict[str, Any] | None = None, schedule: str | None = None, timezone: str = "UTC") -> DeployResult:
    """Pools `cpu` and `gpu`, deployments `<flow>/default`; research-loop gets the defaults and the schedule."""
    cron = _cron(schedule, timezone) if schedule else None
    with get_client(sync_client=True) as client:
        for pool in POOLS:
            _ensure_pool(client, pool)
        ids = {}
        for definition in DEPLOYMENTS:
            is_loop = definition is RESEARCH_LOOP
            ids[definition.full_name] = str(
                _upsert(client, definition, loop_parameters if is_loop else None, cron if is_loop else None)
            )
    return DeployResult(pools=list(POOLS), deployments=ids, schedule=schedule)


def _cron(schedule: str, timezone: str) -> CronSchedule:
    try:
        return CronSchedule(cron=schedule, timezone=timezone)
    except ValueError as exc:
        first = str(exc).splitlines()[-1].strip()
        raise UserError(
            f"invalid --schedule {schedule!r} / --timezone {timezone!r} ({first}); e.g. --schedule '0 22 * * *'"
        ) from None


def _ensure_pool(client: Any, name: str) -> None:
    try:
        client.create_work_pool(
            WorkPoolCreate(name=name, type="process", base_job_template=ProcessWorker.get_default_base_job_template())
        )
    except ObjectAlreadyExists:
        pass


def _upsert(client: Any, definition: DeploymentDefinition, parameters: dict[str, Any] | None, cron: CronSchedule | None) -> Any:
    flow = import_object(definition.entrypoint)
    flow_id = client.create_flow_from_name(definition.flow_name)
    return client.create_deployment(
        flow_id=flow_id,
        name=DEPLOYMENT_NAME,
        entrypoint=definition.entrypoint,
        work_pool_name=definition.pool,
        description=definition.description,
        parameters={k: v for k, v in (parameters or {}).items() if v is not None},
        parameter_openapi_schema=parameter_schema(flow).model_dump_for_openapi(),
        schedules=[DeploymentScheduleCreate(schedule=cron, active=True)] if cron else [],
        pull_steps=[],
        tags=["autoresearch"],
    )
