"""`autoresearch deploy`: create the work pools once, then the three deployments with Prefect's own
deployment API (`flow.to_deployment` + `prefect.deploy`), idempotently.

research-loop gets the user's defaults and, with --schedule, the cron schedule plus a concurrency limit
of one run with collision strategy CANCEL_NEW: a scheduled run that fires while the previous loop is
still going ends Cancelled instead of starting a second loop on the same repo.
"""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from typing import Any

from autoresearch.deployments.definitions import DEPLOYMENT_NAME, DEPLOYMENTS, POOLS, RESEARCH_LOOP, DeploymentDefinition
from prefect import deploy as prefect_deploy
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.client.schemas.schedules import CronSchedule
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.exceptions import ObjectAlreadyExists
from prefect.utilities.importtools import import_object
from prefect.workers.process import ProcessWorker
from pydantic import BaseModel

from autoresearch.errors import UserError

TAGS = ["autoresearch"]
ONE_LOOP_AT_A_TIME = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW)


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
    ids: dict[str, str] = {}
    for pool in POOLS:  # prefect.deploy puts every deployment of one call on one pool
        definitions = [d for d in DEPLOYMENTS if d.pool == pool]
        built = [
            _build(d, loop_parameters if d is RESEARCH_LOOP else None, cron if d is RESEARCH_LOOP else None) for d in definitions
        ]
        with redirect_stdout(io.StringIO()):  # its own table: the CLI prints one line per deployment instead
            deployed = prefect_deploy(
                *built, work_pool_name=pool, build=False, push=False, print_next_steps_message=False, ignore_warnings=True
            )
        ids.update({d.full_name: str(i) for d, i in zip(definitions, deployed, strict=True)})
    return DeployResult(pools=list(POOLS), deployments={d.full_name: ids[d.full_name] for d in DEPLOYMENTS}, schedule=schedule)


def _build(definition: DeploymentDefinition, parameters: dict[str, Any] | None, cron: CronSchedule | None) -> RunnerDeployment:
    flow = import_object(definition.entrypoint)
    return flow.to_deployment(
        name=DEPLOYMENT_NAME,
        description=definition.description,
        parameters={k: v for k, v in (parameters or {}).items() if v is not None},
        schedules=[cron] if cron else [],
        concurrency_limit=ONE_LOOP_AT_A_TIME if cron else None,
        work_pool_name=definition.pool,
        tags=TAGS,
        entrypoint_type=EntrypointType.MODULE_PATH,  # workers import the flow from the installed package
    )


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
