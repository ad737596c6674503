"""The proposer interface: one small class per idea generator, registered by name in the
`autoresearch.proposers` entry-point group (a plugin adds its own in its pyproject.toml)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from importlib.metadata import EntryPoint, entry_points
from typing import Any, ClassVar

from autoresearch.errors import UserError
from autoresearch.models import Proposal, ProposalContext

ENTRY_POINT_GROUP = "autoresearch.proposers"


class ProposerExhausted(UserError):
    """The proposer has no new idea for this baseline."""


class Proposer(ABC):
    name: ClassVar[str]
    can_fix: ClassVar[bool] = False  # may be asked to repair a crashed run

    def __init__(self, **options: Any) -> None:
        self.options = options

    @abstractmethod
    def propose(self, context: ProposalContext) -> Proposal:
        """Return one focused idea for the next experiment."""


def proposer_options(
    model: str | None = None,
    api_key_secret: str | None = None,
    agent_command: str | None = None,
    agent_timeout: float | None = None,
) -> dict[str, Any]:
    """The CLI flags / flow parameters that configure a proposer, as JSON-serializable options (None dropped)."""
    given = {"model": model, "api_key_secret": api_key_secret, "agent_command": agent_command, "agent_timeout": agent_timeout}
    return {key: value for key, value in given.items() if value is not None}


def _entry_points() -> dict[str, EntryPoint]:
    return {entry.name: entry for entry in entry_points(group=ENTRY_POINT_GROUP)}


def available() -> list[str]:
    return sorted(_entry_points())


def get_proposer(name: str, **options: Any) -> Proposer:
    found = _entry_points()
    if name not in found:
        raise UserError(f"unknown proposer {name!r}; choose one of: {', '.join(sorted(found))}")
    return found[name].load()(**options)
