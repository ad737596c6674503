"""Local-mode Prefect tuning: Prefect's own settings only, inside the block only; flat memory."""

from __future__ import annotations

import prefect.client.base as client_base
import prefect.utilities.math as prefect_math
from prefect import flow
from prefect.context import FlowRunContext
from prefect.settings import (
    PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
    PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
    PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE,
    PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED,
    get_current_settings,
)

from autoresearch.prefect_tuning import STARTUP_TIMEOUT_SECONDS, forget_finished_runs, local_mode, local_settings


def test_settings_apply_inside_the_block_only():
    before = (PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value(), PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE.value())
    with local_mode():
        assert PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value() is None
        assert PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value() == STARTUP_TIMEOUT_SECONDS
        assert PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE.value() > 1
        assert PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED.value() is False
    assert (PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value(), PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE.value()) == before


def test_the_ephemeral_server_inherits_the_server_settings():
    """Prefect starts its ephemeral API server with the current settings as environment variables."""
    with local_mode():
        environment = get_current_settings().to_environment_variables(exclude_unset=True)
    server_side = {
        setting.name: str(value) for setting, value in local_settings().items() if setting.name.startswith("PREFECT_SERVER_")
    }
    assert server_side and {name: environment.get(name) for name in server_side} == server_side


def test_nothing_in_prefect_is_replaced():
    with local_mode():
        assert client_base.clamped_poisson_interval is prefect_math.clamped_poisson_interval


@flow
def _child(number: int) -> dict:
    return {"number": number}


@flow
def _parent(children: int) -> tuple[int, int]:
    for number in range(children):
        _child(number)
    remembered = len(FlowRunContext.get().run_results)
    forget_finished_runs()
    return remembered, len(FlowRunContext.get().run_results)


def test_a_parent_flow_forgets_its_finished_children():
    with local_mode():
        remembered, after = _parent(3)
    assert remembered >= 3  # Prefect keeps one entry per finished child run for the parent's lifetime
    assert after == 0
