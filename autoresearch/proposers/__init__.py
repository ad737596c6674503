"""Proposers: where the next idea comes from."""

from autoresearch.proposers.base import (
    Proposer,
    ProposerExhausted,
    available,
    get_proposer,
)

__all__ = ["Proposer", "ProposerExhausted", "available", "get_proposer"]
