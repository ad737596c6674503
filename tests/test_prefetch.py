"""The next idea is proposed while the current one trains (local mode), and a moved baseline is respected."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import FAST_TRAIN, install_proposer, make_repo

from autoresearch import ledger
from autoresearch.models import FileEdit, Proposal, ProposalContext
from autoresearch.prefetch import Prefetcher, PrefetchKey, rebase
from autoresearch.proposers.mutate import MutateProposer

FILES = {"train.py": "LR = 0.1\nDEPTH = 4\n"}
KEY = PrefetchKey("loop", 3, "mutate", "{}")


def proposal(search: str, replace: str) -> Proposal:
    return Proposal(description="an idea", rationale="why", edits=[FileEdit(path="train.py", search=search, replace=replace)])


def test_a_proposal_is_used_as_is_on_its_own_baseline_and_rebased_only_if_its_edits_still_apply():
    idea = proposal("DEPTH = 4", "DEPTH = 5")
    assert rebase(idea, "aaa", FILES, "aaa") is idea
    moved = {"train.py": "LR = 0.2\nDEPTH = 4\n"}  # the experiment in flight changed LR and was kept
    rebased = rebase(idea, "aaa", moved, "bbbbbbbb")
    assert rebased is not None and rebased.edits == idea.edits and "bbbbbbb" in rebased.rationale
    assert rebase(proposal("LR = 0.1", "LR = 0.05"), "aaa", moved, "bbb") is None  # its search text is gone


def test_a_prefetch_is_taken_once_for_its_own_key_and_a_failed_one_is_dropped():
    prefetcher = Prefetcher()
    prefetcher.start(KEY, "aaa", lambda: proposal("DEPTH = 4", "DEPTH = 5"))
    assert prefetcher.take(PrefetchKey("loop", 4, "mutate", "{}")) is None  # another iteration: dropped
    assert prefetcher.take(KEY) is None
    prefetcher.start(KEY, "aaa", lambda: proposal("DEPTH = 4", "DEPTH = 5"))
    baseline, found = prefetcher.take(KEY)
    assert baseline == "aaa" and found.edits[0].replace == "DEPTH = 5"
    assert prefetcher.take(KEY) is None

    def fails() -> Proposal:
        raise RuntimeError("the model is down")

    prefetcher.start(KEY, "aaa", fails)
    assert prefetcher.take(KEY) is None  # the proposer is asked again, where its error surfaces as usual


CALLS: list[tuple[int, float, float, list[str]]] = []


class SlowMutate(MutateProposer):
    """mutate that takes a second to answer, like a (fast) LLM, and notes what it saw."""

    name = "slow-test"

    def propose(self, context: ProposalContext) -> Proposal:
        started = time.time()
        time.sleep(1.0)
        result = super().propose(context)
        CALLS.append((context.iteration, started, time.time(), [row.description for row in context.history]))
        return result


def test_the_next_idea_is_proposed_while_the_current_one_trains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from autoresearch.flows.research_loop import research_loop

    monkeypatch.syspath_prepend(str(install_proposer(tmp_path / "plugins", "slow-test", "test_prefetch:SlowMutate")))

    stamps = tmp_path / "trainings"
    train = FAST_TRAIN.replace("import time\n", "import time\n_started = time.time()\n", 1) + (
        f'open({str(stamps)!r}, "a").write(f"{{_started}} {{time.time()}}\\n")\n'
    )
    repo = make_repo(tmp_path / "exp", train=train)
    monkeypatch.setenv("FAKE_TRAIN_SECONDS", "4")
    CALLS.clear()
    summary = research_loop(repo=str(repo), tag="pre", iterations=3, proposer="slow-test")
    rows = ledger.read(repo / "results.tsv", "val_bpb")
    assert summary.iterations_run == 3 and len(rows) == 4
    assert len({row.description for row in rows}) == 4, "an idea was proposed twice"
    trainings = [tuple(map(float, line.split())) for line in stamps.read_text().splitlines()]
    assert len(trainings) == 4
    # every idea was first asked for while the run before it trained (the first one while the baseline did),
    # seeing the idea in flight; if that one was kept and the early idea no longer applies, it is asked again
    for iteration in (1, 2, 3):
        train_start, train_end = trainings[iteration - 1]
        early = [call for call in CALLS if call[0] == iteration and call[1] < train_end and call[2] > train_start]
        assert early, f"iteration {iteration}'s idea was not proposed during training"
        assert early[0][3][-1] == rows[iteration - 1].description
