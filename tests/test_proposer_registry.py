"""Proposers are found through the `autoresearch.proposers` entry-point group, and only there."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import install_proposer

import autoresearch.proposers as proposers
from autoresearch.errors import UserError
from autoresearch.proposers import available, get_proposer
from autoresearch.proposers.mutate import MutateProposer


class Echo(MutateProposer):
    name = "echo-test"


def test_the_built_in_proposers_are_entry_points():
    assert {"mutate", "llm", "agent"} <= set(available())
    assert isinstance(get_proposer("mutate"), MutateProposer)
    assert not hasattr(proposers, "register")  # no second way to register


def test_an_installed_plugin_is_found_and_an_unknown_name_lists_the_choices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with pytest.raises(UserError, match="unknown proposer 'echo-test'; choose one of: .*mutate"):
        get_proposer("echo-test")
    monkeypatch.syspath_prepend(str(install_proposer(tmp_path, "echo-test", "test_proposer_registry:Echo")))
    assert "echo-test" in available()
    found = get_proposer("echo-test", seed=3)
    assert type(found).__name__ == "Echo" and found.options == {"seed": 3}
