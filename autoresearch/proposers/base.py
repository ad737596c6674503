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
    prefetch: ClassVar[bool] = True  # may propose the next idea while the current one trains

    def __init__(self, **options: Any) -> None:
        self.options = options

    @abstractmethod
    def propose(self, context: ProposalContext) -> Proposal:
        """Return one focused idea for the next experiment."""

    def check(self) -> None:
        """Before the loop starts: raise UserError (one line) if this proposer cannot work as configured."""
        return None


def _entry_points() -> dict[str, EntryPoint]:
    return {entry.name: entry for entry in entry_points(group=ENTRY_POINT_GROUP)}


def available() -> list[str]:
    return sorted(_entry_points())


def get_proposer(name: str, **options: Any) -> Proposer:
    found = _entry_points()
    if name not in found:
        raise UserError(f"unknown proposer {name!r}; choose one of: {', '.join(sorted(found))}")
    return found[name].load()(**options)
