"""run.log in the repo root follows the training that started last; trainings moving it at once never fail."""

from __future__ import annotations

import threading

from autoresearch.training_job import _link


def test_trainings_moving_the_link_at_once_never_fail_and_leave_a_link(tmp_path):
    targets = [tmp_path / f"slot-{n}.log" for n in range(4)]
    for target in targets:
        target.write_text(target.name)
    link = tmp_path / "run.log"
    errors: list[BaseException] = []

    def move(target):
        try:
            for _ in range(200):
                _link(link, target)
        except BaseException as exc:  # noqa: BLE001 - any failure is the finding
            errors.append(exc)

    threads = [threading.Thread(target=move, args=(target,)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert link.is_symlink() and link.resolve() in targets
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["run.log", *(t.name for t in targets)])  # no temp left


def test_a_real_run_log_is_never_replaced(tmp_path):
    real = tmp_path / "run.log"
    real.write_text("the user's own log")
    _link(real, tmp_path / "elsewhere.log")
    assert not real.is_symlink() and real.read_text() == "the user's own log"
