"""The proposer interface: one small class per idea generator, registered by name (simonw/llm style)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any, ClassVar

from autoresearch.errors import UserError
from autoresearch.models import Proposal, ProposalContext

_REGISTRY: dict[str, type[Proposer]] = {}


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


def register(cls: type[Proposer]) -> type[Proposer]:
    _REGISTRY[cls.name] = cls
    return cls


def available() -> list[str]:
    _load_plugins()
    return sorted(_REGISTRY)


def get_proposer(name: str, **options: Any) -> Proposer:
    _load_plugins()
    if name not in _REGISTRY:
        raise UserError(f"unknown proposer {name!r}; choose one of: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](**options)


BUILT_IN = ("autoresearch.proposers.mutate", "autoresearch.proposers.llm", "autoresearch.proposers.agent")


def _load_plugins() -> None:
    for module in BUILT_IN:  # registered on import, even where the package's entry points are stale
        import_module(module)
    for entry in entry_points(group="autoresearch.proposers"):
        if entry.name not in _REGISTRY:
            register(entry.load())
