"""Training progress: read from run.log as it grows, published from a background thread that never fails the run."""

from __future__ import annotations

import threading
from pathlib import Path

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from autoresearch.progress import PrefectProgress, ProgressWatcher, estimate, percent_in, read_tail

KARPATHY = b"\rstep 00041 (12.2%) | loss: 3.1 | dt: 310ms\rstep 00042 (12.3%) | loss: 3.0 | dt: 309ms"


def test_percent_from_karpathys_carriage_return_lines_and_the_tiny_experiments():
    assert percent_in(KARPATHY) == 12.3
    assert percent_in(b"step 00001 (0.0%) | loss\nstep 00300 (100.0%) | loss: 1.0\n---\nval_bpb: 1.0\n") == 100.0
    assert percent_in(b"Device: cpu\nTime budget: 300s\n") is None


def test_estimate_prefers_the_log_and_falls_back_to_the_clock(tmp_path: Path):
    log = tmp_path / "run.log"
    assert estimate(log, elapsed=30, time_budget=300) == 10.0  # no log yet
    log.write_bytes(b"compiling...\n")
    assert estimate(log, elapsed=600, time_budget=300) == 100.0  # capped
    log.write_bytes(b"x" * 100_000 + KARPATHY)
    assert estimate(log, elapsed=299, time_budget=300) == 12.3
    assert len(read_tail(log)) == 4096  # only the tail is read, however big the log


def grow(log: Path, data: bytes) -> None:
    """Append, as a training does (a rewrite would show the watcher an empty log for a moment)."""
    with open(log, "ab") as handle:
        handle.write(data)


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.values: list[float] = []
        self.fail = fail
        self.called = threading.Event()

    def __call__(self, percent: float) -> None:
        self.called.set()
        if self.fail:
            raise ConnectionError("API down")
        self.values.append(percent)


def test_watcher_publishes_the_log_as_it_grows_and_a_last_value(tmp_path: Path):
    log = tmp_path / "run.log"
    recorder = Recorder()
    with ProgressWatcher(log, 300, recorder, interval=0.05) as watcher:
        grow(log, b"step 00010 (50.0%) | loss: 2.0\n")
        assert _wait_for(lambda: 50.0 in recorder.values), recorder.values
        grow(log, b"step 00020 (100.0%) | loss: 1.0\n")
    assert recorder.values[-1] == 100.0 and 50.0 in recorder.values
    assert recorder.values == sorted(set(recorder.values))  # only increases are published
    assert watcher.published == recorder.values


def test_a_failing_publisher_never_fails_the_run(tmp_path: Path, caplog):
    recorder = Recorder(fail=True)
    with ProgressWatcher(tmp_path / "run.log", 300, recorder, interval=0.05):
        assert recorder.called.wait(30)
        result = "trained"
    assert result == "trained" and recorder.values == []
    assert [r.message for r in caplog.records].count("training progress not published (the run goes on): API down") == 1


def test_prefect_progress_artifact_is_created_once_then_updated(tmp_path: Path):
    key = "training-progress-test"
    log = tmp_path / "run.log"

    @flow
    def training() -> None:
        with ProgressWatcher(log, 300, PrefectProgress(key, "test training"), interval=0.05):
            grow(log, b"step 00001 (40.0%) | loss\n")
            assert _wait_for(lambda: _progress(key) == [40.0])
            grow(log, b"step 00002 (100.0%) | loss\n")

    training()
    assert _progress(key) == [100.0]  # one artifact, updated in place


def _progress(key: str) -> list[float]:
    with get_client(sync_client=True) as client:
        return [a.data for a in client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))]


def _wait_for(condition, attempts: int = 300) -> bool:
    done = threading.Event()
    for _ in range(attempts):
        if condition():
            return True
        done.wait(0.1)
    return False


def test_step_summary_for_the_terminals_live_line():
    from autoresearch.progress import step_summary

    tail = b"step 00041 (40.0%) | loss: 3.500000 | lrm: 1.00\rstep 00042 (41.0%) | loss: 3.250000 | lrm: 1.00\n"
    assert step_summary(tail) == "step 00042 loss 3.2500"
    assert step_summary(b"compiling...\n") is None
