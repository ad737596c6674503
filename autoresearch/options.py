"""The research loop's options, in one place: the `run` and `deploy` flags, the research-loop flow's
parameters, the deployment's default parameters, and the checks that make bad ones one clear line.

Each field's `description` is its `--help` text; `flag` (in json_schema_extra) its flag declaration
when it is not simply `--field-name`; `cli=False` keeps a flow parameter off the command line.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, model_validator

from autoresearch.config import parse_duration
from autoresearch.errors import UserError

PROPOSER_FIELDS = ("model", "api_key_secret", "agent_command", "agent_timeout")


def _flag(*declarations: str) -> dict[str, Any]:
    return {"flag": list(declarations)}


class LoopOptions(BaseModel):
    """`autoresearch run` flags = research-loop flow parameters (bar --deployed and --wait, which only the CLI has)."""

    repo: str = Field(".", description="The experiment repository.")
    tag: str | None = Field(None, description="Run name; branch autoresearch/<tag>. Default: today, e.g. nov25.")
    iterations: int | None = Field(None, description="Experiments to run now (baseline not counted). Default: forever.")
    proposer: str = Field("mutate", description="Where ideas come from: mutate or optuna (offline), llm or agent.")
    time_budget: int | None = Field(None, description="Training seconds per run (AUTORESEARCH_TIME_BUDGET).")
    timeout_seconds: float | None = Field(
        None, description="Hard limit per training run, seconds (default 600).", json_schema_extra=_flag("--timeout")
    )
    parallel: int = Field(1, description="GPU slots to keep busy (deployed mode): 2 x N candidates in flight, N training.")
    remote: str | None = Field(None, description="Git URL GPU workers fetch commits from (deployed mode, other machines).")
    stop_after: str | None = Field(None, description="Start no new experiment after this long, e.g. 10h.")
    infra_retries: int = Field(
        2, description="Retries of an iteration run that failed for infrastructure reasons.", json_schema_extra={"cli": False}
    )
    prefetch: bool = Field(
        True,
        description="Propose the next idea while one trains (local mode).",
        json_schema_extra=_flag("--prefetch/--no-prefetch"),
    )
    model: str | None = Field(None, description="--proposer llm: PROVIDER:NAME, e.g. anthropic:claude-sonnet-4-5.")
    api_key_secret: str | None = Field(None, description="--proposer llm: Prefect Secret block holding the API key.")
    agent_command: str | None = Field(None, description="--proposer agent: the agent CLI, e.g. 'claude -p'.")
    agent_timeout: float | None = Field(None, description="--proposer agent: hard limit per agent run, seconds (900).")
    confirm: bool = Field(
        False,
        description="Re-train a would-be keep once; keep only if both runs pass.",
        json_schema_extra=_flag("--confirm"),
    )
    proposer_timeout_seconds: float | None = Field(
        None, description="Seconds for one model request (default 180).", json_schema_extra=_flag("--proposer-timeout")
    )
    proposer_patience_seconds: float | None = Field(
        None,
        description="Seconds of provider failures before the loop stops with exit code 3 (default 1800).",
        json_schema_extra=_flag("--proposer-patience"),
    )

    @model_validator(mode="after")
    def _check(self) -> LoopOptions:
        if self.iterations is not None and self.iterations < 1:
            raise UserError("--iterations must be at least 1 (omit it to run forever)")
        check_common(self.parallel, self.time_budget, self.stop_after)
        if self.infra_retries < 0:
            raise UserError("infra_retries must be 0 or more")
        return self

    def check_mode(self, deployed: bool) -> None:
        """Flags that need deployed mode."""
        if not deployed and self.parallel != 1:
            raise UserError(
                "--parallel N trains on N GPU slots and needs deployed mode: run with --deployed (see README), or --parallel 1"
            )
        if not deployed and self.remote:
            raise UserError("--remote is for GPU workers on other machines and needs deployed mode: run with --deployed")

    def proposer_options(self) -> dict[str, Any]:
        """The options that configure the proposer, as JSON-serializable values (None dropped)."""
        return {key: getattr(self, key) for key in PROPOSER_FIELDS if getattr(self, key) is not None}

    def config_overrides(self) -> dict[str, Any]:
        """The flags that override autoresearch.toml keys (None: the file's value, or the default)."""
        return {
            "timeout_seconds": self.timeout_seconds,
            "proposer_timeout_seconds": self.proposer_timeout_seconds,
            "proposer_patience_seconds": self.proposer_patience_seconds,
        }

    def flow_parameters(self) -> dict[str, Any]:
        """The research-loop run's parameters: the options that are set."""
        return self.model_dump(exclude_none=True)


class DeploymentDefaults(BaseModel):
    """`autoresearch deploy` flags that become research-loop/default's default parameters."""

    repo: str | None = Field(
        None,
        description="Default experiment repo of research-loop runs (needed by --schedule).",
        json_schema_extra=_flag("--repo"),
    )
    stop_after: str | None = Field(None, description="Scheduled runs start no new experiment after this long, e.g. 10h.")
    proposer: str | None = Field(None, description="Default proposer of research-loop runs.")
    parallel: int | None = Field(None, description="Default GPU slots to keep busy (--parallel).")
    time_budget: int | None = Field(None, description="Default training seconds per run.")
    remote: str | None = Field(None, description="Default git URL that GPU workers fetch from.")

    @model_validator(mode="after")
    def _check(self) -> DeploymentDefaults:
        check_common(self.parallel, self.time_budget, self.stop_after)
        return self

    def parameters(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


def check_common(parallel: int | None, time_budget: int | None, stop_after: str | None) -> None:
    """The checks that loop runs and deployment defaults share."""
    if parallel is not None and parallel < 1:
        raise UserError("--parallel must be at least 1")
    if time_budget is not None and time_budget < 1:
        raise UserError("--time-budget must be at least 1 second")
    if stop_after is not None:
        parse_duration(stop_after)
