"""The next idea is proposed while the current one trains (local mode), and a moved baseline is respected."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
from conftest import FAST_TRAIN, install_proposer, make_repo

from autoresearch import ledger
from autoresearch.errors import UserError
from autoresearch.models import FileEdit, Proposal, ProposalContext, Usage
from autoresearch.patience import Cancelled, wait
from autoresearch.prefetch import Prefetcher, PrefetchKey, Taken, rebase, usable, worth_prefetching
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


def test_a_prefetch_is_taken_once_for_its_own_key():
    prefetcher = Prefetcher()
    prefetcher.start(KEY, "aaa", lambda: proposal("DEPTH = 4", "DEPTH = 5"))
    assert prefetcher.take(PrefetchKey("loop", 4, "mutate", "{}")) is None  # another iteration: dropped
    assert prefetcher.take(KEY) is None
    prefetcher.start(KEY, "aaa", lambda: proposal("DEPTH = 4", "DEPTH = 5"))
    taken = prefetcher.take(KEY)
    assert taken.baseline_commit == "aaa" and taken.proposal.edits[0].replace == "DEPTH = 5"
    assert prefetcher.take(KEY) is None


def test_a_failed_prefetch_is_logged_in_one_line_and_its_usage_kept(caplog: pytest.LogCaptureFixture):
    spent = Usage(requests=2, input_tokens=300, output_tokens=40)

    def fails() -> Proposal:
        error = UserError("openai at http://x/v1 refused the request: HTTP 400\nmore detail")
        error.usage = spent
        raise error

    prefetcher = Prefetcher()
    prefetcher.start(KEY, "aaa", fails)
    with caplog.at_level(logging.WARNING):
        taken = prefetcher.take(KEY)
    assert taken.proposal is None and taken.usage == spent  # the idea is asked again; the tokens still count
    lines = [r.getMessage() for r in caplog.records if "prefetched proposal" in r.getMessage()]
    assert lines == [
        "the prefetched proposal for iteration 3 failed (UserError: openai at http://x/v1 refused the "
        "request: HTTP 400); asking for it again"
    ]
    assert usable(taken, FILES, "aaa") == (None, spent)
    stale = Taken("aaa", proposal("LR = 0.1", "LR = 0.05").model_copy(update={"usage": spent}))
    assert usable(stale, {"train.py": "LR = 0.2\n"}, "bbb") == (None, spent)  # made for a baseline that moved


def test_a_cancelled_prefetch_stops_waiting_and_never_holds_the_process():
    started, ended = threading.Event(), []

    def patient() -> Proposal:
        started.set()
        try:
            wait(600)  # a retry wait of autoresearch/patience.py
        except Cancelled:
            ended.append(time.monotonic())
            raise
        return proposal("DEPTH = 4", "DEPTH = 5")

    prefetcher = Prefetcher()
    prefetcher.start(KEY, "aaa", patient)
    assert started.wait(10)
    worker = next(t for t in threading.enumerate() if t.name == "autoresearch-prefetch" and t.is_alive())
    assert worker.daemon  # a request that hangs forever cannot keep the process alive
    cancelled = time.monotonic()
    prefetcher.cancel()
    worker.join(10)
    assert ended and ended[0] - cancelled < 5 and prefetcher.take(KEY) is None


@pytest.mark.parametrize(
    ("iterations", "done_after", "stop_in", "last_training", "expected"),
    [
        (None, 5, None, 300.0, True),  # forever
        (3, 2, None, 300.0, True),  # a third idea will follow
        (3, 3, None, 300.0, False),  # the last one is training: nothing follows
        (1, 0, None, 0.0, True),  # the baseline trains; the one idea follows
        (None, 1, 600.0, 300.0, True),  # the stop time comes after this training
        (None, 1, 200.0, 300.0, False),  # this training ends after the stop time
        (5, 1, -1.0, 0.0, False),  # past the stop time
    ],
)
def test_no_prefetch_for_an_iteration_that_will_not_run(iterations, done_after, stop_in, last_training, expected):
    stop_at = None if stop_in is None else 1000.0 + stop_in
    assert worth_prefetching(iterations, done_after, stop_at, 1000.0, last_training) is expected


CALLS: list[tuple[int, int, list[str]]] = []
TRAININGS = Path()  # set by the test: start-N and end-N files, one pair per training, and asked-N per proposal

# Each training but the last waits (60 s at most) until the next idea has been asked for: no race with the clock,
# however loaded the machine. Without a proposal during training, the wait runs out and the test fails.
WAIT_FOR_THE_NEXT_IDEA = """import pathlib
_trainings = pathlib.Path(os.environ["TRAININGS"])
_number = len(list(_trainings.glob("start-*")))
(_trainings / f"start-{_number}").touch()
_deadline = time.monotonic() + 60
while _number < int(os.environ["LAST_TRAINING"]) and not (_trainings / f"asked-{_number + 1}").exists():
    assert time.monotonic() < _deadline, "the next idea was not asked for during this training"
    time.sleep(0.05)
"""


class SlowMutate(MutateProposer):
    """mutate that takes a moment to answer, like a (fast) LLM, and notes how many trainings had finished."""

    name = "slow-test"

    def propose(self, context: ProposalContext) -> Proposal:
        finished = len(list(TRAININGS.glob("end-*")))
        (TRAININGS / f"asked-{context.iteration}").touch()
        time.sleep(0.2)
        CALLS.append((context.iteration, finished, [row.description for row in context.history]))
        return super().propose(context)


@pytest.mark.slow
def test_the_next_idea_is_proposed_while_the_current_one_trains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from autoresearch.flows.research_loop import research_loop

    global TRAININGS
    monkeypatch.syspath_prepend(str(install_proposer(tmp_path / "plugins", "slow-test", "test_prefetch:SlowMutate")))
    TRAININGS = tmp_path / "trainings"
    TRAININGS.mkdir()
    train = FAST_TRAIN.replace("import time\n", "import time\n" + WAIT_FOR_THE_NEXT_IDEA, 1)
    train += '(_trainings / f"end-{_number}").touch()\n'
    repo = make_repo(tmp_path / "exp", train=train)
    monkeypatch.setenv("TRAININGS", str(TRAININGS))
    monkeypatch.setenv("LAST_TRAINING", "3")
    CALLS.clear()
    summary = research_loop(repo=str(repo), tag="pre", iterations=3, proposer="slow-test")
    rows = ledger.read(repo / "results.tsv", "val_bpb")
    assert summary.iterations_run == 3 and len(rows) == 4
    tried = [(ledger.last_keep(rows[:n]).commit, row.description) for n, row in enumerate(rows) if n]
    assert len(set(tried)) == 3, f"an idea was tried twice on the same baseline: {tried}"
    assert len(list(TRAININGS.glob("end-*"))) == 4
    # every idea was first asked for before the run before it finished (the first one before the baseline did),
    # seeing the idea in flight; if that one was kept and the early idea no longer applies, it is asked again
    for iteration in (1, 2, 3):
        first = next(call for call in CALLS if call[0] == iteration)
        assert first[1] < iteration, (f"iteration {iteration}'s idea was asked for only after the run before it ended", CALLS)
        assert first[2][-1] == rows[iteration - 1].description
