"""The optuna proposer: Optuna's TPE sampler over the UPPER_CASE numeric constants that mutate finds.

Offline, seeded and reproducible; it needs the `optuna` extra. The search space is mutate's: the same
constants (autoresearch/proposers/mutate.py finds them) in a box around their values at the tag's baseline
(`search_range`: log scale for positive floats and large ints, integer ranges for ints and `2**k`
exponents, the same sign and [0, 1) bounds). Each proposal rebuilds an in-memory study from results.tsv:

- every row whose description names its changes (`A 0.04 -> 0.06, B 8 -> 10`, as this proposer and
  mutate write them), the baseline and its noise repeats, is told to the study as a finished trial at
  the point it ran (the baseline of its time plus its changes); crash rows as failed trials;
- rows that name no changes (an LLM's idea) or that ran outside the box are not told.

So a resumed loop continues where it stopped, with no state besides the ledger. The proposal is the
diff from the current baseline to the sampler's suggestion, described like `MATRIX_LR 0.04 -> 0.06,
DEPTH 8 -> 10`.
"""

from __future__ import annotations

import random
import warnings
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from autoresearch.errors import UserError
from autoresearch.models import FileEdit, LedgerRow, Proposal, ProposalContext
from autoresearch.noise import repeat_number
from autoresearch.prefetch import STILL_TRAINING
from autoresearch.proposers.base import Proposer, ProposerExhausted
from autoresearch.proposers.mutate import (
    DESCRIPTION,
    Constant,
    Number,
    SearchRange,
    evaluate_text,
    find_all_constants,
    literal,
    parameter,
    search_range,
)

if TYPE_CHECKING:
    import optuna

STARTUP_TRIALS = 8  # random suggestions before TPE models the ledger (the baseline counts as one)
MAX_ASKS = 20  # suggestions drawn per proposal until one differs from the baseline and from every told point
CLIP_TOLERANCE = 1e-3  # a told value this close (relative) outside the box is moved onto its edge
MISSING = "the optuna proposer needs optuna: pip install optuna (or pip install -e '.[optuna]' in this project)"

Point = dict[str, Number]  # constant name -> value (not parameter)


@dataclass(frozen=True)
class Told:
    """One ledger row, as a trial: where it ran and what it gave (None: a crash)."""

    point: Point
    value: float | None


def changes(description: str) -> list[tuple[str, str, str]] | None:
    """`A 0.04 -> 0.06, B 8 -> 10` -> [(A, 0.04, 0.06), (B, 8, 10)]; None if any part is not such a change."""
    parts = []
    for part in description.strip().split(", "):
        match = DESCRIPTION.match(part.strip())
        if not match or evaluate_text(match[2]) is None or evaluate_text(match[3]) is None:
            return None
        parts.append((match[1], match[2], match[3]))
    return parts


def _apply(point: Point, parts: list[tuple[str, str, str]], side: int) -> Point:
    """The point with each change's old (side 1) or new (side 2) value; names not in the point are ignored."""
    updated = dict(point)
    for part in parts:
        if part[0] in updated:
            updated[part[0]] = evaluate_text(part[side])
    return updated


def _start(rows: list[LedgerRow], current: Point) -> tuple[int, Point]:
    """Undo the kept changes, newest first: the point at the tag's baseline, and the first row still readable.

    A keep whose description names no changes ends the walk: rows before it ran at unknown points.
    """
    point = dict(current)
    for index in range(len(rows) - 1, -1, -1):
        row = rows[index]
        if row.status != "keep" or row.description == "baseline":
            continue
        parts = changes(row.description)
        if parts is None:
            return index + 1, point
        point = _apply(point, parts, 1)
    return 0, point


def told_rows(rows: list[LedgerRow], current: Point, reasons: dict[str, str]) -> tuple[Point, list[Told]]:
    """The tag's start point and every ledger row whose point is known, in order."""
    first, point = _start(rows, current)
    start, told = dict(point), []
    for row in rows[first:]:
        if reasons.get(row.commit) == STILL_TRAINING:
            continue
        if row.description == "baseline" or repeat_number(row.description) is not None:
            ran = dict(point)
        elif (parts := changes(row.description)) is not None:
            ran = _apply(point, parts, 2)
        else:
            continue
        told.append(Told(ran, None if row.status == "crash" else row.value))
        if row.status == "keep":
            point = ran
    return start, told


def distribution(box: SearchRange) -> Any:
    import optuna

    if box.integer:
        return optuna.distributions.IntDistribution(int(box.low), int(box.high), log=box.log)
    return optuna.distributions.FloatDistribution(float(box.low), float(box.high), log=box.log)


def _inside(param: Number, box: SearchRange) -> Number | None:
    """The parameter, moved onto the box's edge if it is just outside (rounding), or None if it is outside."""
    slack = CLIP_TOLERANCE * max(abs(box.low), abs(box.high))
    if box.low - slack <= param <= box.high + slack:
        return min(max(param, box.low), box.high)
    return None


def _trial(told: Told, constants: dict[str, Constant], boxes: dict[str, SearchRange], space: dict[str, Any]) -> Any:
    import optuna

    params = {}
    for name, value in told.point.items():
        inside = _inside(parameter(constants[name], value), boxes[name])
        if inside is None:
            return None
        params[name] = int(inside) if boxes[name].integer else float(inside)
    state = optuna.trial.TrialState.FAIL if told.value is None else optuna.trial.TrialState.COMPLETE
    return optuna.trial.create_trial(params=params, distributions=space, value=told.value, state=state)


def _sampler_seed(context: ProposalContext) -> int:
    return random.Random(f"optuna:{context.seed}:{context.iteration}").getrandbits(32)


def build_study(context: ProposalContext, constants: list[Constant]) -> tuple[optuna.Study, dict[str, SearchRange], int]:
    """An in-memory study with every readable ledger row told; also the box per constant and how many were told."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    current = {c.name: c.value for c in constants}
    start, told = told_rows(context.history, current, context.reasons)
    boxes = {c.name: search_range(_at_start(c, start[c.name])) for c in constants}
    by_name = {c.name: c for c in constants}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=_sampler_seed(context), n_startup_trials=STARTUP_TRIALS, multivariate=True)
    study = optuna.create_study(direction=context.direction, sampler=sampler)
    space = {name: distribution(box) for name, box in boxes.items()}
    trials = [t for t in (_trial(x, by_name, boxes, space) for x in told) if t is not None]
    study.add_trials(trials)
    return study, boxes, len(trials)


def _at_start(constant: Constant, value: Number) -> Constant:
    """The constant as it was at the tag's baseline (a `b**k` literal keeps its base, with the old exponent)."""
    text = literal(constant, parameter(constant, value)) if constant.kind == "power" else constant.text
    return replace(constant, value=value, text=text)


def suggest(study: optuna.Study, boxes: dict[str, SearchRange], constants: list[Constant]) -> dict[str, str]:
    """New literals for the constants that change: a suggestion unlike the baseline and every told point."""
    seen = {tuple(sorted(t.params.items())) for t in study.get_trials(deepcopy=False)}
    fallback: dict[str, str] = {}
    space = {name: distribution(box) for name, box in boxes.items()}
    for _ in range(MAX_ASKS):
        trial = study.ask(space)
        texts = {c.name: literal(c, trial.params[c.name]) for c in constants}
        changed = {c.name: texts[c.name] for c in constants if evaluate_text(texts[c.name]) != c.value}
        if not changed:
            continue
        point = tuple(sorted((c.name, parameter(c, evaluate_text(texts[c.name]))) for c in constants))
        if point not in seen:
            return changed
        fallback = fallback or changed
    return fallback


class OptunaProposer(Proposer):
    """Offline, seeded: Optuna's TPE over the numeric constants, told every ledger row of the tag."""

    name = "optuna"

    def __init__(self, **options: Any) -> None:
        """Fails here, when the CLI checks its flags, rather than mid-loop, if optuna is not installed."""
        try:
            import optuna  # noqa: F401
        except ImportError:
            raise UserError(MISSING) from None
        super().__init__(**options)

    def propose(self, context: ProposalContext) -> Proposal:
        constants = find_all_constants(context.editable_files)
        if not constants:
            files = ", ".join(sorted(context.editable_files)) or "(no editable files)"
            raise ProposerExhausted(
                f"optuna found no UPPER_CASE numeric constants (NAME = 0.1, NAME = 64, NAME = 2**19) at the top "
                f"level of {files}; add some, or use another proposer"
            )
        study, boxes, told = build_study(context, constants)
        changed = suggest(study, boxes, constants)
        if not changed:
            raise ProposerExhausted(f"optuna drew {MAX_ASKS} suggestions equal to the baseline; use another proposer")
        chosen = [c for c in constants if c.name in changed]
        return Proposal(
            description=", ".join(f"{c.name} {c.text} -> {changed[c.name]}" for c in chosen),
            rationale=(
                f"TPE suggestion over {len(constants)} constants, after {told} trials told from results.tsv "
                f"(seed {context.seed}): changes {len(chosen)} of them from baseline {context.baseline_commit[:12]}."
            ),
            edits=[
                FileEdit(path=c.path, search=c.line, replace=c.line[: c.start] + changed[c.name] + c.line[c.end :])
                for c in chosen
            ],
        )
