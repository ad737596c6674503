"""Pure parts of deployed mode: worker plans, --gpus parsing, --stop-after, a window candidate's final decision."""

from __future__ import annotations

import pytest

from autoresearch.config import parse_duration
from autoresearch.errors import UserError
from autoresearch.models import Decision
from autoresearch.rounds import still_applies
from autoresearch.worker import parse_gpus, plan_workers, worker_env


def test_one_worker_per_gpu_with_its_device_and_slot_plus_a_cpu_worker():
    plans = plan_workers(["0", "1"], None, cpu=True, host="box")
    assert [(p.name, p.pool, p.limit) for p in plans] == [
        ("box-gpu0", "gpu", 2),
        ("box-gpu1", "gpu", 2),
        ("box-cpu", "cpu", None),
    ]
    assert plans[1].env == {"CUDA_VISIBLE_DEVICES": "1", "AUTORESEARCH_SLOT": "1"}
    assert "--limit" in plans[0].command() and "--limit" not in plans[2].command()


def test_workers_and_their_runs_get_a_patient_prefect_client_unless_the_user_set_one():
    [plan] = plan_workers(None, 1, cpu=False, host="box")
    env = worker_env(plan, {"PATH": "/bin"}, query_seconds=1)
    assert env["PREFECT_CLIENT_MAX_RETRIES"] == "8" and env["PREFECT_WORKER_QUERY_SECONDS"] == "1"
    assert env["AUTORESEARCH_SLOT"] == "0" and env["PATH"] == "/bin"
    assert worker_env(plan, {"PREFECT_CLIENT_MAX_RETRIES": "3"})["PREFECT_CLIENT_MAX_RETRIES"] == "3"


def test_cpu_slots_hide_the_gpus_and_can_start_at_another_number():
    plans = plan_workers(None, 2, cpu=False, first_slot=4, host="box")
    assert [p.name for p in plans] == ["box-slot4", "box-slot5"]
    assert all(p.env["CUDA_VISIBLE_DEVICES"] == "" for p in plans) and plans[1].env["AUTORESEARCH_SLOT"] == "5"


@pytest.mark.parametrize(("gpus", "slots", "cpu"), [(["0"], 1, True), (None, -1, True), ([], 0, False)])
def test_impossible_worker_plans_are_one_line_errors(gpus, slots, cpu):
    with pytest.raises(UserError):
        plan_workers(gpus, slots, cpu, host="box")


def test_gpu_lists():
    assert parse_gpus("0, 1") == ["0", "1"]
    assert parse_gpus("GPU-8c1f2a3b-1111") == ["GPU-8c1f2a3b-1111"]
    for bad in ("", "0,0", "zero", "0;1"):
        with pytest.raises(UserError):
            parse_gpus(bad)


def test_durations():
    assert parse_duration("10h") == 36000 and parse_duration("1h30m") == 5400 and parse_duration("90") == 90
    for bad in ("", "10x", "h", "-5m"):
        with pytest.raises(UserError, match="--stop-after"):
            parse_duration(bad)


def test_a_keep_whose_baseline_moved_meanwhile_is_a_discard_naming_the_keep_that_moved_it():
    keep = Decision(status="keep", reason="improved by 0.010000 (> big_gain 0.005)")
    assert still_applies(keep, "a" * 40, "a" * 40) == keep
    late = still_applies(keep, "a" * 40, "b" * 40)
    assert late.status == "discard" and late.reason.startswith(keep.reason)
    assert "bbbbbbb was kept since this candidate started" in late.reason and "aaaaaaa" in late.reason
    for other in ("discard", "crash"):
        verdict = Decision(status=other, reason="r")
        assert still_applies(verdict, "a" * 40, "b" * 40) == verdict


def test_only_new_ideas_count_toward_iterations_across_attempts():
    from autoresearch.iteration import Baseline, CrashInfo, Fix, Iteration, LoopContext, NoiseRepeat, Resumed
    from autoresearch.loop_attempts import AttemptProgress, is_idea

    loop = LoopContext(repo="/r", tag="t", loop_id="abc")

    def spec(kind=None, value: float | None = 1.0) -> dict:
        extra = {"kind": kind} if kind is not None else {}
        return Iteration(loop=loop, iteration=3, baseline_commit="c0", baseline_value=value, **extra).model_dump(mode="json")

    assert is_idea(spec()) and is_idea(spec(Resumed(commit="c1")))
    assert not is_idea(spec(Baseline(), value=None))
    crash = CrashInfo(commit="c1", iteration=2, description="d", reason="r", attempt=1)
    assert not is_idea(spec(Fix(crash=crash))) and not is_idea(spec(NoiseRepeat(number=1)))
    assert not is_idea(spec(Resumed(commit="c1", repeat=1)))
    line = AttemptProgress(attempt=2, ideas_done=1, elapsed_seconds=61.4).line(2, "10m")
    assert line.startswith("attempt 2 of this loop run: earlier attempts finished 1 idea(s) of --iterations 2")
    assert "61 s of --stop-after 10m used" in line


def test_a_pool_without_workers_is_named_with_what_to_do():
    from autoresearch.pool_health import no_worker_message

    line = no_worker_message("gpu", "t · iter 0003 · train abc1234", 185.2)
    assert "no live worker on pool 'gpu'" in line and "185 s" in line and "autoresearch worker" in line
