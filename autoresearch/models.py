"""Typed values that cross task and module boundaries (pydantic, so they persist as Prefect results)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator

Status = Literal["keep", "discard", "crash"]


def one_line(text: str) -> str:
    """A description fit for one results.tsv cell: no tabs, no newlines, no control characters."""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text.replace("\t", " "))
    return " ".join(cleaned.split())


class LedgerRow(BaseModel):
    """One line of results.tsv: one training run."""

    commit: str
    value: float
    memory_gb: float
    status: Status
    description: str

    @field_validator("description")
    @classmethod
    def _single_line(cls, value: str) -> str:
        return one_line(value)


class FileEdit(BaseModel):
    """Replace exactly one occurrence of `search` in `path` (relative to the repo root) by `replace`."""

    path: str
    search: str
    replace: str


class Usage(BaseModel):
    """What asking a model cost: tokens in and out, and dollars where a price is known (else None)."""

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None

    def __add__(self, other: Usage) -> Usage:
        costs = [c for c in (self.cost_usd, other.cost_usd) if c is not None]
        return Usage(
            requests=self.requests + other.requests,
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cost_usd=sum(costs) if costs else None,
        )

    def line(self) -> str:
        dollars = "cost unknown" if self.cost_usd is None else f"${self.cost_usd:.4f}"
        return f"{self.input_tokens} tokens in, {self.output_tokens} out ({self.requests} requests), {dollars}"


class Proposal(BaseModel):
    """One focused idea: what it is, why, and the edits that implement it.

    `refused` is set when the proposer could not produce an applicable idea (an invalid model reply,
    an agent that touched other files): the idea is then logged as a crash row with that reason.
    """

    description: str = Field(min_length=1)
    rationale: str = ""
    edits: list[FileEdit] = Field(default_factory=list)
    refused: str | None = None
    usage: Usage | None = None

    @field_validator("description")
    @classmethod
    def _single_line(cls, value: str) -> str:
        return one_line(value)


class CrashReport(BaseModel):
    """A crashed experiment that a proposer is asked to fix."""

    commit: str
    description: str
    reason: str
    log_tail: str  # sanitized last lines of its run.log: untrusted data, never instructions
    attempt: int  # 1 or 2
    max_attempts: int = 2


class ProposalContext(BaseModel):
    """Everything a proposer may look at. Deterministic for the same loop state."""

    iteration: int
    baseline_commit: str
    editable_files: dict[str, str]  # at the commit the edits apply to (the crashed commit for a fix)
    program: str = ""
    history: list[LedgerRow] = Field(default_factory=list)
    metric: str = "val_bpb"
    direction: Literal["minimize", "maximize"] = "minimize"
    seed: int = 0
    readonly_interfaces: dict[str, str] = Field(default_factory=dict)  # path -> public names and signatures
    reasons: dict[str, str] = Field(default_factory=dict)  # 7-char commit -> the decision's one-line reason
    crash: CrashReport | None = None  # set when this proposal is a fix attempt
    repo: str | None = None  # the experiment repo (for proposers that need a scratch checkout)
    scratch_dir: str | None = None  # where such a proposer may keep its checkout
    time_budget: float | None = None  # training seconds per run, when set by the loop
    best_run: dict[str, str] = Field(default_factory=dict)  # facts from the current best's run.log (prompt.run_facts)


class TrainResult(BaseModel):
    """How one training subprocess ended. The log itself stays on disk."""

    commit: str
    log_path: Path
    exit_code: int | None
    timed_out: bool = False
    seconds: float
    error: str | None = None  # set when the command could not run at all


class Metrics(BaseModel):
    """What extract found in run.log."""

    value: float | None = None
    memory_mb: float | None = None
    failed: bool = False  # a line that is exactly FAIL
    tail: str = ""  # last lines of the log, sanitized


class Decision(BaseModel):
    status: Status
    reason: str
    improvement: float | None = None
    complexity: int | None = None
