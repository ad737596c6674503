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


class Proposal(BaseModel):
    """One focused idea: what it is, why, and the edits that implement it."""

    description: str = Field(min_length=1)
    rationale: str = ""
    edits: list[FileEdit] = Field(default_factory=list)

    @field_validator("description")
    @classmethod
    def _single_line(cls, value: str) -> str:
        return one_line(value)


class ProposalContext(BaseModel):
    """Everything a proposer may look at. Deterministic for the same loop state."""

    iteration: int
    baseline_commit: str
    editable_files: dict[str, str]
    program: str = ""
    history: list[LedgerRow] = Field(default_factory=list)
    metric: str = "val_bpb"
    direction: Literal["minimize", "maximize"] = "minimize"
    seed: int = 0
    crash_log_tail: str | None = None


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
