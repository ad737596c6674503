"""The iteration model: illegal kinds cannot be built; `next_step` (local) and `next_candidate` (deployed's
window) pick what runs next (tables of cases)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from autoresearch.iteration import (
    MAX_FIX_ATTEMPTS,
    Baseline,
    CrashInfo,
    Fix,
    Idea,
    Iteration,
    IterationOutcome,
    LoopContext,
    LoopState,
    NoiseRepeat,
    Resumed,
    Stop,
    arrived,
    build_candidate,
    build_next,
    decided,
    logged,
    next_candidate,
    next_step,
    resumed,
    started,
)
from autoresearch.models import Decision, LedgerRow, Proposal

CONTEXT = LoopContext(repo="/r", tag="t", loop_id="L")
BASE = "b" * 40
CRASHED = "c" * 40


def row(description: str, value: float = 1.0, status: str = "discard") -> LedgerRow:
    return LedgerRow(commit="abcdef0", value=value, memory_gb=0.0, status=status, description=description)


KEPT_BASELINE = [row("baseline", 1.0, "keep")]
WITH_REPEAT = [*KEPT_BASELINE, row("baseline (noise repeat 1)", 1.01)]
WITH_IDEA = [*KEPT_BASELINE, row("an idea", 0.9, "keep")]


def state(rows: list[LedgerRow], **update) -> LoopState:
    fields = dict(
        next_iteration=len(rows),
        baseline_commit=BASE,
        baseline_value=1.0 if rows else None,
        rows=rows,
        noise_repeats=0,
        can_fix=True,
    )
    return LoopState(**{**fields, **update})


def iteration(kind, candidate: bool = False, number: int = 3) -> Iteration:
    value = None if isinstance(kind, Baseline) else 1.0
    return Iteration(loop=CONTEXT, iteration=number, baseline_commit=BASE, baseline_value=value, candidate=candidate, kind=kind)


def outcome(status: str, trained: bool = True, description: str = "an idea") -> IterationOutcome:
    return IterationOutcome(
        iteration=3,
        commit=CRASHED,
        proposal=Proposal(description=description),
        verdict=Decision(status=status, reason="exit code 1" if status == "crash" else "r"),
        trained=trained,
        baseline_commit=BASE,
        baseline_value=1.0,
    )


def crash(attempt: int) -> CrashInfo:
    return CrashInfo(commit="d" * 40, iteration=2, description="the idea", reason="exit code 1", attempt=attempt)


IN_FLIGHT = Resumed(commit="e" * 40)
IN_FLIGHT_REPEAT = Resumed(commit="e" * 40, repeat=2)

CASES = [
    # (name, state, last kind, last outcome, expected kinds or stop reason)
    ("fresh loop: the baseline", state([]), None, None, ["baseline"]),
    (
        "baseline crashed before: the baseline again",
        state([row("baseline", 0.0, "crash")], baseline_value=None),
        None,
        None,
        ["baseline"],
    ),
    ("limits never stop the baseline", state([], iterations=1, done=1), None, None, ["baseline"]),
    ("in-flight commit first", state(WITH_IDEA, in_flight=IN_FLIGHT), None, None, ["resumed"]),
    ("in-flight even past the limit", state(WITH_IDEA, in_flight=IN_FLIGHT, iterations=1, done=1), None, None, ["resumed"]),
    (
        "noise repeat after the kept baseline",
        state(KEPT_BASELINE, noise_repeats=2),
        Baseline(),
        outcome("keep"),
        ["noise_repeat"],
    ),
    ("second noise repeat", state(WITH_REPEAT, noise_repeats=2), NoiseRepeat(number=1), outcome("discard"), ["noise_repeat"]),
    ("repeats done: an idea", state(WITH_REPEAT, noise_repeats=1), NoiseRepeat(number=1), outcome("discard"), ["idea"]),
    ("no repeats once ideas ran", state(WITH_IDEA, noise_repeats=3), Idea(), outcome("keep"), ["idea"]),
    ("a trained crash gets a fix", state(WITH_IDEA), Idea(), outcome("crash"), ["fix"]),
    ("no fix when the proposer cannot", state(WITH_IDEA, can_fix=False), Idea(), outcome("crash"), ["idea"]),
    ("no fix of a refused edit (never trained)", state(WITH_IDEA), Idea(), outcome("crash", trained=False), ["idea"]),
    ("a resumed idea that crashed gets a fix", state(WITH_IDEA), Resumed(commit="e" * 40), outcome("crash"), ["fix"]),
    ("no fix of a noise repeat", state(WITH_REPEAT), NoiseRepeat(number=1), outcome("crash"), ["idea"]),
    ("a fix that crashed: attempt 2", state(WITH_IDEA), Fix(crash=crash(1)), outcome("crash"), ["fix"]),
    ("fixes give up", state(WITH_IDEA), Fix(crash=crash(MAX_FIX_ATTEMPTS)), outcome("crash"), ["idea"]),
    ("a fix runs past the limit", state(WITH_IDEA, iterations=1, done=1), Idea(), outcome("crash"), ["fix"]),
    ("limit reached", state(WITH_IDEA, iterations=2, done=2), Idea(), outcome("keep"), "ran 2 iterations"),
    (
        "stop time reached",
        state(WITH_IDEA, out_of_time=True, done=4),
        Idea(),
        outcome("keep"),
        "stop time reached after 4 iterations",
    ),
    ("a crashed window candidate gets a fix too", state(WITH_IDEA), "candidate", outcome("crash"), ["fix"]),
]


@pytest.mark.parametrize(("name", "loop", "last_kind", "last_outcome", "expected"), CASES, ids=[c[0] for c in CASES])
def test_next_step(name, loop, last_kind, last_outcome, expected):
    last = iteration(Idea(), candidate=True) if last_kind == "candidate" else iteration(last_kind) if last_kind else None
    step = next_step(loop, last, last_outcome)
    if isinstance(expected, str):
        assert step == Stop(reason=expected)
    else:
        assert not isinstance(step, Stop) and [step.kind] == expected


def test_a_fix_builds_on_the_crash_and_keeps_the_original_idea():
    first = next_step(state(WITH_IDEA), iteration(Idea()), outcome("crash", description="wider MLP"))
    fix = first
    assert fix.crash == CrashInfo(commit=CRASHED, iteration=3, description="wider MLP", reason="exit code 1", attempt=1)
    again = next_step(state(WITH_IDEA), iteration(fix), outcome("crash", description="fix of ccccccc: wider MLP"))
    assert again.crash.attempt == 2 and again.crash.description == "wider MLP"
    assert iteration(fix).parent_commit == CRASHED


def test_a_resumed_noise_repeat_is_judged_as_one_and_does_not_count():
    assert resumed("e" * 40, "experiment: baseline (noise repeat 2)") == IN_FLIGHT_REPEAT
    assert iteration(IN_FLIGHT_REPEAT).repeat == 2 and not iteration(IN_FLIGHT_REPEAT).counts
    assert iteration(IN_FLIGHT).counts and iteration(IN_FLIGHT).repeat is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": Baseline(), "baseline_value": 1.0}, "baseline value"),
        ({"kind": Idea(), "baseline_value": None}, "baseline value"),
        ({"kind": NoiseRepeat(number=1), "baseline_value": 1.0, "candidate": True}, "only new ideas and fixes"),
    ],
)
def test_illegal_iterations_cannot_be_built(fields, message):
    with pytest.raises(ValidationError, match=message):
        Iteration(loop=CONTEXT, iteration=1, baseline_commit=BASE, **fields)


def test_local_iterations_are_numbered_from_the_next_row_and_counted_after():
    loop = state(WITH_IDEA, iterations=10)
    ran = build_next(CONTEXT, loop, Idea())
    assert ran.iteration == 2 and not ran.candidate
    later = logged(loop, ran, "f" * 40, 0.8, [*WITH_IDEA, row("x")])
    assert (later.next_iteration, later.done, later.baseline_commit, later.baseline_value) == (3, 1, "f" * 40, 0.8)


WINDOW_CASES = [
    # (name, state, expected kind, Stop reason, or None for "wait for the oldest candidate")
    ("fresh loop: the baseline", state([], parallel=2), "baseline"),
    ("the baseline runs alone", state([], parallel=2, running=1, alone=True), None),
    ("nothing beside a noise repeat", state(WITH_REPEAT, noise_repeats=1, parallel=2, running=1, alone=True), None),
    ("resumed commit once nothing is in flight", state(WITH_IDEA, parallel=2, in_flight=IN_FLIGHT), "resumed"),
    ("noise repeats run alone", state(KEPT_BASELINE, noise_repeats=2, parallel=2, running=1), None),
    ("a new idea while the window has room", state(WITH_IDEA, parallel=2, running=3), "idea"),
    ("the window is 2 x parallel", state(WITH_IDEA, parallel=2, running=4), None),
    ("one slot: two in flight", state(WITH_IDEA, parallel=1, running=2), None),
    ("a run that ended makes room before its row", state(WITH_IDEA, parallel=2, running=4, measured=1), "idea"),
    ("at most 2 x window wait for an older row", state(WITH_IDEA, parallel=1, running=4, measured=3), None),
    ("a queued fix before new ideas", state(WITH_IDEA, parallel=2, running=1, fixes=[crash(1)]), "fix"),
    ("a fix past the limit", state(WITH_IDEA, parallel=2, iterations=2, done=2, fixes=[crash(1)]), "fix"),
    ("no idea started past --iterations: wait", state(WITH_IDEA, parallel=2, iterations=3, done=3, running=2), None),
    ("limit reached, nothing in flight", state(WITH_IDEA, parallel=2, iterations=3, done=3), "ran 3 iterations"),
    ("no idea started past --stop-after: wait", state(WITH_IDEA, parallel=2, out_of_time=True, running=1), None),
    (
        "stop time, nothing in flight",
        state(WITH_IDEA, parallel=2, out_of_time=True, done=5),
        "stop time reached after 5 iterations",
    ),
]


@pytest.mark.parametrize(("name", "loop", "expected"), WINDOW_CASES, ids=[c[0] for c in WINDOW_CASES])
def test_next_candidate(name, loop, expected):
    step = next_candidate(loop)
    if expected is None:
        assert step is None
    elif isinstance(step, Stop):
        assert step.reason == expected
    else:
        assert step.kind == expected


def test_candidates_start_from_the_tip_and_count_when_started():
    loop = state(WITH_IDEA, parallel=2, iterations=10)
    first = build_candidate(CONTEXT, loop, Idea())
    loop = started(loop, first)
    second = build_candidate(CONTEXT, loop, Idea())
    assert (first.iteration, second.iteration) == (2, 3) and first.candidate and second.baseline_commit == BASE
    assert (started(loop, second).running, started(loop, second).done) == (2, 2)
    assert arrived(started(loop, second)).measured == 1
    alone = build_candidate(CONTEXT, state([]), Baseline())
    assert not alone.candidate and alone.baseline_value is None
    assert next_candidate(started(state([], parallel=2), alone)) is None, "nothing starts beside the baseline"


def test_a_keep_moves_the_baseline_and_a_crash_of_the_current_baseline_queues_its_fix():
    loop = started(state(WITH_IDEA, parallel=2), iteration(Idea(), candidate=True, number=2))
    kept = outcome("keep").model_copy(update={"commit": "f" * 40, "baseline_value": 0.8})
    after = decided(loop, iteration(Idea(), candidate=True, number=2), kept, WITH_IDEA)
    assert (after.baseline_commit, after.baseline_value, after.running) == ("f" * 40, 0.8, 0)
    crashed = decided(loop, iteration(Idea(), candidate=True), outcome("crash"), WITH_IDEA)
    assert crashed.baseline_commit == BASE and [c.commit for c in crashed.fixes] == [CRASHED]
    fix = build_candidate(CONTEXT, crashed, Fix(crash=crashed.fixes[0]))
    assert fix.parent_commit == CRASHED and fix.baseline_commit == BASE and fix.candidate
    assert started(crashed, fix).fixes == []
    moved = after.model_copy(update={"running": 1})
    assert decided(moved, iteration(Idea(), candidate=True), outcome("crash"), WITH_IDEA).fixes == [], "stale: no fix"
    discarded = decided(moved, iteration(Idea(), candidate=True), outcome("discard"), WITH_IDEA)
    assert discarded.baseline_commit == "f" * 40, "a discard of an older baseline does not move the loop back"


def test_the_iteration_round_trips_through_json_as_a_deployment_parameter():
    spec = iteration(Fix(crash=crash(1)))
    assert Iteration.model_validate(spec.model_dump(mode="json")) == spec
