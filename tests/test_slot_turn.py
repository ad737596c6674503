"""The hand-over on a GPU slot: the next run gets ready in its own seat and trains the moment the slot frees."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from autoresearch.slot_turn import SlotBusy, SlotTurn


def test_the_next_run_gets_ready_in_its_own_seat_and_trains_when_the_slot_frees(tmp_path):
    seen: dict[str, dict[str, float]] = {}

    def run(name: str, hold: float) -> None:
        turn = SlotTurn(0, tmp_path)
        with turn.seat() as seat:
            ready = time.monotonic()
            with turn.training(timeout_seconds=30) as waited:
                start = time.monotonic()
                time.sleep(hold)
                end = time.monotonic()
        seen[name] = {"seat": seat, "ready": ready, "start": start, "end": end, "waited": waited}

    first = threading.Thread(target=run, args=("first", 1.0))
    first.start()
    time.sleep(0.3)
    second = threading.Thread(target=run, args=("second", 0.1))
    second.start()
    first.join(30)
    second.join(30)
    a, b = seen["first"], seen["second"]
    assert {a["seat"], b["seat"]} == {0, 1}, "two runs on one slot share a worktree"
    assert b["ready"] < a["end"], "the next run was not ready while the slot trained"
    assert b["start"] >= a["end"], "two trainings on one slot at once"
    assert b["waited"] > 0.3


def test_other_slots_do_not_wait(tmp_path):
    with SlotTurn(0, tmp_path).training(timeout_seconds=30), SlotTurn(1, tmp_path).training(timeout_seconds=30) as waited:
        assert waited < 0.5


def test_a_run_killed_while_training_frees_its_slot(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from autoresearch.slot_turn import SlotTurn\n"
            f"with SlotTurn(0, Path({str(tmp_path)!r})).training(30):\n"
            "    print('holding', flush=True); time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "holding"
    holder.kill()
    holder.wait()
    with SlotTurn(0, tmp_path).training(timeout_seconds=30) as waited:
        assert waited < 5


def test_a_slot_busy_past_any_training_is_an_error_naming_the_slot(tmp_path):
    with SlotTurn(3, tmp_path).training(timeout_seconds=30):
        with pytest.raises(SlotBusy, match="slot 3 stayed busy"):
            with SlotTurn(3, tmp_path).training(timeout_seconds=0.2, grace=0):
                pass
