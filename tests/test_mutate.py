"""The offline `mutate` proposer: one constant, one nearest untried step, seeded, never repeated."""

from __future__ import annotations

import ast
import textwrap

import pytest

from autoresearch.models import LedgerRow, Proposal, ProposalContext
from autoresearch.proposers import ProposerExhausted, get_proposer
from autoresearch.proposers.mutate import MutateProposer, candidates, evaluate_text, find_all_constants

TRAIN = textwrap.dedent(
    '''\
    """Pretraining script, single GPU, fixed time budget."""
    import math
    import time

    from prepare import MAX_SEQ_LEN, TIME_BUDGET

    # ---------------------------------------------------------------------------
    # Hyperparameters (edit these directly, no CLI flags needed)
    # ---------------------------------------------------------------------------

    # Model architecture
    DEPTH = 8               # number of transformer layers
    WINDOW_PATTERN = "SSSL" # sliding window pattern: L=full, S=half context

    # Optimization
    TOTAL_BATCH_SIZE = 2**19 # ~524K tokens per optimizer step
    EMBEDDING_LR = 0.6      # learning rate for token embeddings (Adam)
    MATRIX_LR = 0.04        # learning rate for matrix parameters (Muon)
    WEIGHT_DECAY = 0.0      # cautious weight decay for Muon
    ADAM_BETAS = (0.8, 0.95) # Adam beta1, beta2
    WARMUP_RATIO = 0.0      # fraction of time budget for LR warmup
    WARMDOWN_RATIO = 0.5    # fraction of time budget for LR warmdown
    DEVICE_BATCH_SIZE = 128  # per-device batch size (reduce if OOM)
    COMPILE = True


    def get_lr_multiplier(progress):
        WARMUP = WARMUP_RATIO * 2
        LOCAL_SCALE = 0.5
        if progress < WARMUP:
            return progress / WARMUP * LOCAL_SCALE
        return 1.0


    step = 0
    t_start = time.time()
    print(f"depth {DEPTH}, lr {MATRIX_LR}")
    '''
)
NAMES = [
    "DEPTH",
    "TOTAL_BATCH_SIZE",
    "EMBEDDING_LR",
    "MATRIX_LR",
    "WEIGHT_DECAY",
    "WARMUP_RATIO",
    "WARMDOWN_RATIO",
    "DEVICE_BATCH_SIZE",
]
# DEPTH 4 (+-1, +-2), TOTAL_BATCH_SIZE 4 (k+-1, k+-2), EMBEDDING_LR 6 and MATRIX_LR 6 (x/ 1.5, 2, 3),
# WEIGHT_DECAY 3 and WARMUP_RATIO 3 (+0.05, +0.1, +0.2), WARMDOWN_RATIO 4 (x2 and x3 would leave [0, 1)),
# DEVICE_BATCH_SIZE 4 (x/ 2, 4)
CANDIDATE_COUNT = 34


def context(iteration: int = 1, history: list[LedgerRow] | None = None, source: str = TRAIN, **extra) -> ProposalContext:
    return ProposalContext(
        iteration=iteration,
        baseline_commit="a1b2c3d",
        editable_files={"train.py": source},
        history=history or [],
        **extra,
    )


def row(description: str, status: str = "discard", commit: str = "0000000") -> LedgerRow:
    return LedgerRow(commit=commit, value=1.0, memory_gb=1.0, status=status, description=description)


def apply(proposal: Proposal, source: str = TRAIN) -> str:
    (edit,) = proposal.edits
    assert edit.path == "train.py"
    assert source.count(edit.search) == 1
    return source.replace(edit.search, edit.replace, 1)


def exhaust(ctx: ProposalContext) -> list[Proposal]:
    """Propose, feed each proposal back as a discard row, until the proposer runs out."""
    proposer = MutateProposer()
    proposals: list[Proposal] = []
    history = list(ctx.history)
    for iteration in range(1, 200):
        try:
            proposal = proposer.propose(ctx.model_copy(update={"iteration": iteration, "history": history}))
        except ProposerExhausted as exc:
            assert "another proposer" in str(exc)
            return proposals
        proposals.append(proposal)
        history.append(row(proposal.description))
    raise AssertionError("never exhausted")


def test_finds_only_top_level_numeric_constants():
    found = find_all_constants({"train.py": TRAIN})
    assert [c.name for c in found] == NAMES
    assert {c.name: c.text for c in found}["TOTAL_BATCH_SIZE"] == "2**19"
    assert sum(len(candidates(c)) for c in found) == CANDIDATE_COUNT


def test_skips_names_assigned_twice_and_annotated_assignments_count():
    source = "LR = 0.1\nLR = 0.2\nBETA2: float = 0.95\nSTEPS = 10\nSTEPS += 1\nNAME = 'x'\n"
    assert [c.name for c in find_all_constants({"train.py": source})] == ["BETA2"]


def test_edit_changes_one_literal_and_keeps_the_line():
    proposal = MutateProposer().propose(context())
    new = apply(proposal)
    changed = [(a, b) for a, b in zip(TRAIN.splitlines(), new.splitlines(), strict=False) if a != b]
    assert len(changed) == 1 and len(new.splitlines()) == len(TRAIN.splitlines())
    old_line, new_line = changed[0]
    name, old, arrow, value = proposal.description.split()
    assert arrow == "->" and old_line.startswith(f"{name} = {old}")
    assert new_line == old_line.replace(old, value, 1)
    assert "#" not in old_line or old_line[old_line.index("#") :] == new_line[new_line.index("#") :]
    ast.parse(new)


def test_same_context_same_proposal_other_iterations_differ():
    proposer = MutateProposer()
    assert proposer.propose(context(iteration=3)) == proposer.propose(context(iteration=3))
    assert len({proposer.propose(context(iteration=i)).description for i in range(1, 30)}) > 3
    assert proposer.propose(context(seed=1)) == proposer.propose(context(seed=1))


def test_never_repeats_a_step_from_the_same_baseline_until_exhausted():
    proposals = exhaust(context())
    descriptions = [p.description for p in proposals]
    assert len(descriptions) == len(set(descriptions)) == CANDIDATE_COUNT
    for proposal in proposals:
        ast.parse(apply(proposal))
    assert {d.split()[0] for d in descriptions} == set(NAMES)


def test_nearest_step_first():
    first_steps = {}
    for proposal in exhaust(context()):
        name, _, _, value = proposal.description.split()
        first_steps.setdefault(name, value)
    assert first_steps["MATRIX_LR"] in {"0.06", "0.02667"}
    assert first_steps["DEPTH"] in {"7", "9"}
    assert first_steps["WEIGHT_DECAY"] == "0.05"
    assert first_steps["TOTAL_BATCH_SIZE"] in {"2**18", "2**20"}
    assert first_steps["DEVICE_BATCH_SIZE"] in {"64", "256"}


def test_rows_before_the_last_keep_do_not_count():
    everything = [row(p.description) for p in exhaust(context())]
    with pytest.raises(ProposerExhausted):
        MutateProposer().propose(context(history=everything))
    after_keep = [*everything, row("DEPTH 8 -> 9", status="keep")]
    MutateProposer().propose(context(history=after_keep))  # a new baseline: everything is open again
    assert len(exhaust(context(history=after_keep))) == CANDIDATE_COUNT


def test_crashes_count_as_tried_and_other_descriptions_are_ignored():
    history = [row("baseline", status="keep"), row("MATRIX_LR 0.04 -> 0.06", status="crash"), row("new optimizer")]
    descriptions = [p.description for p in exhaust(context(history=history))]
    assert "MATRIX_LR 0.04 -> 0.06" not in descriptions
    assert len(descriptions) == CANDIDATE_COUNT - 1


def test_bounds_hold():
    values: dict[str, list[float]] = {}
    for proposal in exhaust(context()):
        name, _, _, value = proposal.description.split()
        values.setdefault(name, []).append(evaluate_text(value))
    for name in ("WARMUP_RATIO", "WARMDOWN_RATIO"):
        assert all(0.0 <= v < 1.0 for v in values[name])
    for name in ("DEPTH", "DEVICE_BATCH_SIZE", "TOTAL_BATCH_SIZE"):
        assert all(isinstance(v, int) and v >= 1 for v in values[name])
    assert all(v > 0 for v in values["MATRIX_LR"] + values["EMBEDDING_LR"])
    small = "SMALL_DROPOUT = 0.9\nLAYERS = 1\nLR = -0.1\n"
    found = {c.name: [x.value for x in candidates(c)] for c in find_all_constants({"m.py": small})}
    assert found["SMALL_DROPOUT"] and all(0 <= v < 1 for v in found["SMALL_DROPOUT"])
    assert found["LAYERS"] == [2, 3]
    assert all(v < 0 for v in found["LR"])


def test_formatting_of_new_values():
    source = "LR = 3e-4  # adam\nBATCH = 2 ** 10\nSCALE = 0.04\nCLIP = -1.0\n"
    formatted = {c.name: [x.text for x in candidates(c)] for c in find_all_constants({"train.py": source})}
    assert formatted["LR"][:2] == ["4.5e-4", "2e-4"]
    assert all("e" in text and "0000" not in text for text in formatted["LR"])
    assert formatted["BATCH"][:2] == ["2 ** 11", "2 ** 9"]
    assert formatted["SCALE"] == ["0.06", "0.02667", "0.08", "0.02", "0.12", "0.01333"]
    assert formatted["CLIP"][:2] == ["-1.5", "-0.6667"]
    proposals = {p.description for p in exhaust(context(source=source))}
    assert "LR 3e-4 -> 4.5e-4" in proposals and "BATCH 2 ** 10 -> 2 ** 11" in proposals
    assert "TOTAL_BATCH_SIZE 2**19 -> 2**18" in {p.description for p in exhaust(context())}
    edit = MutateProposer().propose(context(source="LR = 3e-04  # adam\n")).edits[0]
    assert edit.search == "LR = 3e-04  # adam\n" and edit.replace in {"LR = 4.5e-04  # adam\n", "LR = 2e-04  # adam\n"}


def test_no_constants_is_exhausted_and_names_the_file():
    with pytest.raises(ProposerExhausted, match="train.py"):
        MutateProposer().propose(context(source='NAME = "x"\n\ndef f():\n    LR = 0.1\n'))


def test_registered_by_name():
    assert isinstance(get_proposer("mutate"), MutateProposer)
