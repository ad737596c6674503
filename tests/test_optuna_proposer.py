"""The offline `optuna` proposer: TPE over mutate's constants, told every ledger row, resumable, seeded."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest
from conftest import git, run_loop

from autoresearch import ledger
from autoresearch.edits import apply_edits
from autoresearch.models import LedgerRow, ProposalContext
from autoresearch.proposers import available, get_proposer
from autoresearch.proposers.mutate import find_all_constants, search_range
from autoresearch.proposers.optuna_tpe import OptunaProposer, build_study, changes

TRAIN = textwrap.dedent(
    """\
    MATRIX_LR = 0.06  # learning rate
    DEPTH = 5
    TOTAL_BATCH_SIZE = 2**19
    WARMUP_RATIO = 0.1
    NAME = "not a number"
    """
)


def row(commit: str, value: float, status: str, description: str) -> LedgerRow:
    return LedgerRow(commit=commit, value=value, memory_gb=1.0, status=status, description=description)


# The tag started at MATRIX_LR 0.04, DEPTH 4, 2**18; one keep moved it to what TRAIN holds now.
HISTORY = [
    row("a000001", 1.10, "keep", "baseline"),
    row("a000002", 1.08, "keep", "MATRIX_LR 0.04 -> 0.06, DEPTH 4 -> 5, TOTAL_BATCH_SIZE 2**18 -> 2**19"),
    row("a000003", 1.09, "discard", "MATRIX_LR 0.06 -> 0.09"),
    row("a000004", 0.0, "crash", "DEPTH 5 -> 6, WARMUP_RATIO 0.1 -> 0.2"),
    row("a000005", 1.2, "discard", "an idea in words that names no constant"),
]


def context(history: list[LedgerRow] = HISTORY, seed: int = 0, iteration: int = 5) -> ProposalContext:
    return ProposalContext(
        iteration=iteration, baseline_commit="b" * 40, editable_files={"train.py": TRAIN}, history=history, seed=seed
    )


def test_every_readable_row_is_a_trial_at_the_point_it_ran():
    study, _, told = build_study(context(), find_all_constants({"train.py": TRAIN}))
    trials = study.trials
    assert told == len(trials) == 4  # the row in words cannot be placed
    points = [(t.params["MATRIX_LR"], t.params["DEPTH"], t.params["TOTAL_BATCH_SIZE"], t.params["WARMUP_RATIO"]) for t in trials]
    assert points == [(0.04, 4, 18, 0.1), (0.06, 5, 19, 0.1), (0.09, 5, 19, 0.1), (0.06, 6, 19, 0.2)]
    assert [t.value for t in trials[:3]] == [1.10, 1.08, 1.09]


def test_crash_rows_are_failed_trials():
    study, _, _ = build_study(context(), find_all_constants({"train.py": TRAIN}))
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE] * 3 + [optuna.trial.TrialState.FAIL]
    assert study.trials[3].value is None


def test_the_box_is_centred_on_the_tags_start_with_log_scale_for_rates():
    _, boxes, _ = build_study(context(), find_all_constants({"train.py": TRAIN}))
    lr, depth, batch, warmup = (boxes[name] for name in ("MATRIX_LR", "DEPTH", "TOTAL_BATCH_SIZE", "WARMUP_RATIO"))
    assert lr.log and not lr.integer and lr.low == pytest.approx(0.04 / 9) and lr.high == pytest.approx(0.04 * 9)
    assert depth.integer and (depth.low, depth.high) == (1, 8)  # >= 1, as mutate keeps it
    assert batch.integer and (batch.low, batch.high) == (14, 22)  # the exponent of 2**18
    assert warmup.high < 1.0  # a RATIO stays in [0, 1)


def test_resume_is_from_the_ledger_alone_and_seeded():
    proposal = OptunaProposer().propose(context())
    again = get_proposer("optuna").propose(context())  # a fresh process would build the same study
    assert proposal == again
    assert OptunaProposer().propose(context(seed=1)).description != proposal.description
    # what the ledger holds is told: a point already in results.tsv is not proposed again
    tried = HISTORY + [row("a000006", 1.3, "discard", proposal.description)]
    assert OptunaProposer().propose(context(history=tried)).description != proposal.description


def test_a_proposal_is_the_diff_from_the_baseline_described_like_the_ledger():
    proposal = OptunaProposer().propose(context())
    parts = changes(proposal.description)
    assert parts, proposal.description
    current = {c.name: c.text for c in find_all_constants({"train.py": TRAIN})}
    assert all(old == current[name] and new != old for name, old, new in parts)
    edited = apply_edits({"train.py": TRAIN}, proposal.edits)
    assert edited.refused is None
    after = {c.name: c for c in find_all_constants(edited.files)}
    assert {name: after[name].text for name, _, _ in parts} == {name: new for name, _, new in parts}
    assert "NAME" not in proposal.description


def test_search_ranges_keep_mutates_bounds():
    source = "A_RATIO = 0.5\nB = 0.0\nC = -3\nD = 64\nE_LR = -0.01\n"
    boxes = {c.name: search_range(c) for c in find_all_constants({"m.py": source})}
    assert boxes["A_RATIO"].high < 1.0 and boxes["A_RATIO"].low > 0
    assert (boxes["B"].low, boxes["B"].log) == (0.0, False)
    assert boxes["C"].high <= -1 and boxes["C"].integer
    assert (boxes["D"].low, boxes["D"].high, boxes["D"].log) == (4, 1024, True)
    assert boxes["E_LR"].high < 0 and not boxes["E_LR"].log


def test_registered_through_the_entry_point():
    assert "optuna" in available()
    assert isinstance(get_proposer("optuna"), OptunaProposer)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_real_loop_with_optuna_resumes_from_results_tsv(repo: Path):
    run_loop(repo, "opt", iterations=3, proposer="optuna")
    run_loop(repo, "opt", iterations=2, proposer="optuna")  # resumed: the study is rebuilt from results.tsv
    rows = ledger.read(repo / "results.tsv")
    assert len(rows) == 6 and [r.description for r in rows].count("baseline") == 1
    assert all(changes(r.description) for r in rows[1:]), [r.description for r in rows]
    # the ledger alone gives back every row's point: it matches the constants of the commit that ran
    tip = {"train.py": git(repo, "show", "autoresearch/opt:train.py") + "\n"}
    constants = find_all_constants(tip)
    final = ProposalContext(iteration=6, baseline_commit="tip", editable_files=tip, history=rows)
    study, _, told = build_study(final, constants)
    assert told == 6
    for ledger_row, trial in zip(rows, study.trials, strict=True):
        ran = {
            c.name: c.value for c in find_all_constants({"train.py": git(repo, "show", f"{ledger_row.commit}:train.py") + "\n"})
        }
        assert trial.params == pytest.approx(ran, rel=1e-3)
        assert trial.value == pytest.approx(ledger_row.value)


def test_without_optuna_installed_it_says_what_to_install():
    script = (
        "import sys; sys.modules['optuna'] = None\n"  # as if the extra were not installed
        "from autoresearch.errors import UserError\n"
        "from autoresearch.proposers import get_proposer\n"
        "try:\n    get_proposer('optuna')\nexcept UserError as exc:\n    print(exc)\n"
    )
    shown = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert shown.stdout.strip().startswith("the optuna proposer needs optuna: pip install optuna"), shown.stderr
