"""The options model: one set of fields and checks behind the `run`/`deploy` flags and the research-loop flow."""

from __future__ import annotations

import inspect
import re

import pytest

from autoresearch.errors import UserError
from autoresearch.options import DeploymentDefaults, LoopOptions


def test_the_flow_parameters_are_the_options_fields_with_the_same_defaults():
    from autoresearch.flows.research_loop import research_loop

    parameters = inspect.signature(research_loop.fn).parameters
    assert list(parameters) == list(LoopOptions.model_fields)
    assert {name: p.default for name, p in parameters.items()} == {
        name: field.default for name, field in LoopOptions.model_fields.items()
    }


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"iterations": 0}, "--iterations must be at least 1 (omit it to run forever)"),
        ({"parallel": 0}, "--parallel must be at least 1"),
        ({"time_budget": 0}, "--time-budget must be at least 1 second"),
        ({"stop_after": "soon"}, "invalid --stop-after 'soon'"),
        ({"infra_retries": -1}, "infra_retries must be 0 or more"),
    ],
)
def test_bad_options_are_one_line_user_errors(fields, message):
    with pytest.raises(UserError, match=re.escape(message)):
        LoopOptions(**fields)


def test_deployment_defaults_share_the_checks():
    with pytest.raises(UserError, match="--parallel must be at least 1"):
        DeploymentDefaults(parallel=0)
    assert DeploymentDefaults(repo="/r", stop_after="10h").parameters() == {"repo": "/r", "stop_after": "10h"}


def test_flags_that_need_deployed_mode():
    with pytest.raises(UserError, match="needs deployed mode"):
        LoopOptions(parallel=2).check_mode(deployed=False)
    with pytest.raises(UserError, match="--remote is for GPU workers"):
        LoopOptions(remote="file:///x").check_mode(deployed=False)
    LoopOptions(parallel=2, remote="file:///x").check_mode(deployed=True)


def test_proposer_options_and_flow_parameters_drop_what_is_not_set():
    options = LoopOptions(repo="/r", model="anthropic:x", agent_timeout=5.0)
    assert options.proposer_options() == {"model": "anthropic:x", "agent_timeout": 5.0}
    assert "tag" not in options.flow_parameters() and options.flow_parameters()["repo"] == "/r"
