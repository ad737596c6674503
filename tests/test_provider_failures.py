"""`autoresearch run --proposer llm` against a local OpenAI-compatible server with scripted failures.

Every scenario drives pydantic-ai's OpenAI chat model over HTTP (tests/fakes/openai_server.py) and checks
what a user sees the next morning: the rows in results.tsv, the warnings, how long it took (a generous
bound: the behaviour is about time). Where the CLI's part is under test (exit codes, the resume command,
one-line errors, signals, the process exiting) through the real CLI, with no traceback on stderr; the
other scenarios run the same loop in this process (conftest.run_loop) and read its warnings from the log.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pydantic_ai.models
import pytest
from conftest import FAST_TRAIN, cli, git, make_repo, run_loop
from fakes.openai_server import FakeOpenAI, refused_url

from autoresearch import ledger

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

MODEL = "openai-chat:fake-model"
STOP_AFTER = 60  # seconds: --stop-after of the test that ends a loop while a prefetch hangs
KEY = "sk-test-0123456789"
LR_LINE = "LEARNING_RATE = 0.04  # learning rate\n"
GOOD = {
    "description": "LEARNING_RATE 0.04 -> 0.1",
    "rationale": "the metric is best at 0.1",
    "edits": [{"path": "train.py", "search": LR_LINE, "replace": "LEARNING_RATE = 0.1  # learning rate\n"}],
}
DEPTH = {
    "description": "DEPTH 4 -> 6",
    "rationale": "deeper is better here",
    "edits": [{"path": "train.py", "search": "DEPTH = 4  # layers\n", "replace": "DEPTH = 6  # layers\n"}],
}


def provider_env(url: str, key: str = KEY) -> dict[str, str]:
    return {"OPENAI_BASE_URL": url, "OPENAI_API_KEY": key}


def run(repo: Path, url: str, *flags: str, key: str = KEY, model: str = MODEL) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    args = ("run", "--repo", str(repo), "--tag", "night", "--proposer", "llm", "--model", model, *flags)
    result = cli(*args, env=provider_env(url, key), timeout=240)
    return result, time.monotonic() - started


@pytest.fixture(autouse=True)
def model_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loops in this process reach the fake server (tests/test_llm_proposer.py forbids real requests)."""
    monkeypatch.setattr(pydantic_ai.models, "ALLOW_MODEL_REQUESTS", True)


def run_here(repo: Path, url: str, **options) -> float:
    """The llm loop in this process against `url`; returns how long it took."""
    started = time.monotonic()
    run_loop(repo, "night", provider_env(url), proposer="llm", model=MODEL, **options)
    return time.monotonic() - started


def logged(caplog: pytest.LogCaptureFixture, fragment: str) -> list[str]:
    return [record.getMessage() for record in caplog.records if fragment in record.getMessage()]


def rows(repo: Path) -> list[tuple[str, str]]:
    path = repo / "results.tsv"
    return [(r.description, r.status) for r in ledger.read(path, "val_bpb")] if path.exists() else []


def state(repo: Path) -> dict:
    return json.loads((repo / ".git/autoresearch/night.json").read_text())


def no_traceback(result: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in result.stderr, result.stderr[-3000:]


def test_a_500_burst_longer_than_the_sdk_retries_is_ridden_out(repo: Path, caplog: pytest.LogCaptureFixture):
    with FakeOpenAI([{"status": 500, "for_seconds": 5}, {"reply": GOOD}]) as fake:
        seconds = run_here(repo, fake.url, iterations=1)
    assert rows(repo) == [("baseline", "keep"), ("LEARNING_RATE 0.04 -> 0.1", "keep")]
    lines = logged(caplog, "proposer failure")
    assert lines and all(f"openai at {fake.url}" in line and "HTTP 500" in line for line in lines)
    assert all("next attempt at" in line for line in lines)
    assert seconds < 150


def test_persistent_429_stops_the_loop_with_exit_code_3_and_the_same_command_resumes(repo: Path):
    with FakeOpenAI([{"status": 429}]) as fake:
        result, seconds = run(repo, fake.url, "--iterations", "1", "--proposer-patience", "6")
    no_traceback(result)
    assert result.returncode == 3, result.stderr[-3000:]
    assert rows(repo) == [("baseline", "keep")]
    assert git(repo, "rev-parse", "--short=7", "autoresearch/night") == ledger.read(repo / "results.tsv", "val_bpb")[0].commit
    assert git(repo, "status", "--porcelain", "--untracked-files=no") == ""
    stopped = [line for line in result.stderr.splitlines() if line.startswith("stopped:")]
    assert len(stopped) == 1 and "HTTP 429" in stopped[0] and fake.url in stopped[0]
    assert "resume with: autoresearch run --repo" in stopped[0] and "--proposer-patience 6" in stopped[0]
    assert seconds < 150

    with FakeOpenAI([{"reply": GOOD}]) as fake:  # the provider is back: the same command resumes
        again, _ = run(repo, fake.url, "--iterations", "1", "--proposer-patience", "6")
    assert again.returncode == 0, again.stderr[-3000:]
    assert rows(repo) == [("baseline", "keep"), ("LEARNING_RATE 0.04 -> 0.1", "keep")]


def test_retry_after_is_honoured(repo: Path, caplog: pytest.LogCaptureFixture):
    with FakeOpenAI([{"status": 429, "retry_after": "3"}, {"reply": GOOD}]) as fake:
        run_here(repo, fake.url, iterations=1, prefetch=False)
    asked = fake.proposals()
    assert len(asked) == 2 and asked[1].at - asked[0].at >= 2.9
    assert any("HTTP 429" in line for line in logged(caplog, "proposer failure"))


def test_a_server_that_never_answers_times_out_and_is_asked_again(repo: Path, caplog: pytest.LogCaptureFixture):
    with FakeOpenAI([{"hang": True}, {"reply": GOOD}]) as fake:
        seconds = run_here(repo, fake.url, iterations=1, proposer_timeout_seconds=3)
    assert rows(repo) == [("baseline", "keep"), ("LEARNING_RATE 0.04 -> 0.1", "keep")]
    assert any("no answer within 3 s" in line or "timed out" in line for line in logged(caplog, "proposer failure"))
    assert seconds < 150


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("refused", ["cannot reach openai at", "start the server"]),
        ("wrong path", ["404", "/wrong/", "OPENAI_BASE_URL"]),
        ("bad key", ["rejected the API key", "OPENAI_API_KEY"]),
        ("unknown model", ["does not know the model 'no-such-model'", "--model"]),
    ],
)
def test_a_misconfigured_endpoint_is_one_line_before_any_training(repo: Path, case: str, expected: list[str]):
    with FakeOpenAI([{"reply": GOOD}], key=KEY) as fake:
        url = {"refused": refused_url(), "wrong path": fake.url.replace("/v1", "/wrong")}.get(case, fake.url)
        key = "sk-wrong" if case == "bad key" else KEY
        model = "openai-chat:no-such-model" if case == "unknown model" else MODEL
        result, seconds = run(repo, url, "--iterations", "1", key=key, model=model)
    no_traceback(result)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and url.removesuffix("/v1") in errors[0], result.stderr
    assert all(part in errors[0] for part in expected), errors[0]
    assert not (repo / "results.tsv").exists() and not fake.proposals()  # nothing trained, nothing proposed
    assert seconds < 60


def test_malformed_tool_arguments_are_sent_back_and_a_corrected_reply_is_used(repo: Path):
    with FakeOpenAI([{"malformed": True}, {"reply": GOOD}]) as fake:
        run_here(repo, fake.url, iterations=1)
    assert rows(repo) == [("baseline", "keep"), ("LEARNING_RATE 0.04 -> 0.1", "keep")]
    second = fake.proposals()[1].body["messages"]
    assert any(m.get("role") == "tool" for m in second)  # the error went back with the tool call
    assert state(repo)["usage"]["0001"]["requests"] == 2


def test_iterations_1_asks_for_one_idea_only_and_exits(repo: Path):
    with FakeOpenAI([{"reply": GOOD}, {"hang": True}]) as fake:
        seconds = run_here(repo, fake.url, iterations=1)
    assert len(fake.proposals()) == 1  # no prefetch for an iteration that will not run
    assert seconds < 150


def test_a_failed_prefetch_is_logged_asked_again_and_its_usage_counted(repo: Path, caplog: pytest.LogCaptureFixture):
    with FakeOpenAI([{"malformed": True}, {"status": 400}, {"reply": GOOD}]) as fake:
        run_here(repo, fake.url, iterations=1)
    assert rows(repo) == [("baseline", "keep"), ("LEARNING_RATE 0.04 -> 0.1", "keep")]
    failed = logged(caplog, "prefetched proposal for iteration 1 failed")
    assert len(failed) == 1 and "HTTP 400" in failed[0] or "400" in failed[0]
    usage = state(repo)["usage"]
    assert usage["0001-prefetch"]["requests"] == 1 and usage["0001"]["requests"] == 1
    status = cli("status", "--repo", str(repo))
    assert "proposer cost (night): 240 tokens in, 60 out (2 requests)" in status.stdout


def _start(repo: Path, url: str, *flags: str, env: dict | None = None) -> subprocess.Popen:
    args = ["run", "--repo", str(repo), "--tag", "night", "--proposer", "llm", "--model", MODEL, *flags]
    return subprocess.Popen(
        [sys.executable, "-m", "autoresearch.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **provider_env(url), **(env or {})},
    )


def _wait_for(condition, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.2)


@pytest.mark.parametrize(
    ("signum", "flags"), [(signal.SIGINT, ()), (signal.SIGTERM, ("--no-prefetch",))], ids=["sigint-prefetch", "sigterm-direct"]
)
def test_a_signal_while_the_proposal_hangs_exits_within_seconds(repo: Path, signum: int, flags: tuple[str, ...]):
    with FakeOpenAI([{"hang": True}]) as fake:
        process = _start(repo, fake.url, "--iterations", "2", *flags)
        _wait_for(lambda: rows(repo) == [("baseline", "keep")] and fake.proposals())
        time.sleep(1.0)  # the loop is now waiting for the hanging proposal
        sent = time.monotonic()
        process.send_signal(signum)
        out, err = process.communicate(timeout=60)
        seconds = time.monotonic() - sent
    print(f"exit {seconds:.1f} s after {signal.Signals(signum).name}")
    assert process.returncode == 130, err[-3000:]
    assert "interrupted" in err and "Traceback" not in err, err[-3000:]
    assert seconds < 15
    assert rows(repo) == [("baseline", "keep")]
    assert git(repo, "rev-parse", "--short=7", "autoresearch/night") == ledger.read(repo / "results.tsv", "val_bpb")[0].commit


def test_the_process_exits_soon_after_the_loop_ends_with_a_prefetch_hanging(tmp_path: Path):
    # the baseline trains 1 s; the first idea trains until the stop time has surely passed. The prefetch for a
    # second idea starts with it (by the last training, this one ends in time) and hangs; the loop ends at the
    # stop time and must not wait for it
    go = tmp_path / "go"
    train = FAST_TRAIN.replace(
        'time.sleep(float(os.environ.get("FAKE_TRAIN_SECONDS", "0")))',
        f"time.sleep(1)\nwhile LEARNING_RATE != 0.04 and not os.path.exists({str(go)!r}):\n    time.sleep(0.2)",
    )
    repo = make_repo(tmp_path / "exp", train=train)
    with FakeOpenAI([{"reply": GOOD}, {"hang": True}]) as fake:
        process = _start(repo, fake.url, "--stop-after", f"{STOP_AFTER}s", "--timeout", "300")
        ended: list[float] = []

        def watch() -> None:
            for line in process.stdout:
                if "stop time reached" in line:
                    ended.append(time.monotonic())

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        _wait_for(lambda: rows(repo) or process.poll() is not None, timeout=200)
        stop_by = time.monotonic() + STOP_AFTER  # the loop started before its baseline was logged
        _wait_for(lambda: len(fake.proposals()) == 2 or process.poll() is not None, timeout=200)
        time.sleep(max(0.0, stop_by - time.monotonic()))  # its stop time has passed now
        go.write_text("go")
        process.wait(timeout=200)
        exited = time.monotonic()
        watcher.join(timeout=5)
        err = process.stderr.read()
    assert process.returncode == 0, err[-3000:]
    assert len(fake.proposals()) == 2 and ended, err[-3000:]  # the second idea was prefetched when the loop ended
    print(f"exit {exited - ended[0]:.1f} s after the summary")
    assert exited - ended[0] < 15
    assert rows(repo) == [("baseline", "keep"), ("LEARNING_RATE 0.04 -> 0.1", "keep")]


FLAKY_AGENT = """\
import pathlib, sys
count = pathlib.Path(sys.argv[1])
failures = int(count.read_text()) if count.exists() else 0
if failures < int(sys.argv[2]):
    count.write_text(str(failures + 1))
    print("agent: API error 529 overloaded", file=sys.stderr)
    raise SystemExit(1)
train = pathlib.Path("train.py")
train.write_text(train.read_text().replace("LEARNING_RATE = 0.04", "LEARNING_RATE = 0.1"))
print("LEARNING_RATE 0.04 -> 0.1")
"""


def flaky_agent(tmp_path: Path, failures: int) -> str:
    """The command line of an agent whose API fails `failures` times, then edits."""
    script = tmp_path / "flaky_agent.py"
    script.write_text(FLAKY_AGENT)
    return f"{sys.executable} {script} {tmp_path / 'failures'} {failures}"


def run_agent(repo: Path, tmp_path: Path, failures: int, *flags: str) -> tuple[subprocess.CompletedProcess, float]:
    command = flaky_agent(tmp_path, failures)
    started = time.monotonic()
    args = ("run", "--repo", str(repo), "--tag", "night", "--proposer", "agent", "--agent-command", command)
    result = cli(*args, "--iterations", "1", "--no-prefetch", *flags, timeout=240)
    return result, time.monotonic() - started


def test_an_agent_whose_api_fails_is_retried_within_the_patience(repo: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture):
    run_loop(repo, "night", iterations=1, proposer="agent", agent_command=flaky_agent(tmp_path, 2), prefetch=False)
    assert rows(repo) == [("baseline", "keep"), ("LEARNING_RATE 0.04 -> 0.1", "keep")]
    lines = logged(caplog, "proposer failure")
    assert len(lines) == 2 and all("agent at " in line and "exit code 1, nothing changed" in line for line in lines)


def test_an_agent_that_keeps_failing_stops_the_loop_with_exit_code_3(repo: Path, tmp_path: Path):
    result, seconds = run_agent(repo, tmp_path, 1000, "--proposer-patience", "5")
    no_traceback(result)
    assert result.returncode == 3, result.stderr[-3000:]
    assert rows(repo) == [("baseline", "keep")]
    assert [line for line in result.stderr.splitlines() if line.startswith("stopped:")]
    assert seconds < 150


def test_an_agent_program_that_does_not_exist_is_one_line_before_any_training(repo: Path):
    result = cli("run", "--repo", str(repo), "--proposer", "agent", "--agent-command", "no-such-agent-cli -p", timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        "error: the agent program 'no-such-agent-cli' was not found on PATH; install it or fix --agent-command"
    )
    assert not (repo / "results.tsv").exists()
