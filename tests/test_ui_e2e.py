"""Watching the research: a 5-iteration loop on the session's real Prefect server, then what the UI shows of it.

First through the API (always), then in headless Chromium through the Prefect UI (skipped, with the
reason, only when /usr/bin/chromium is missing). Screenshots go to tests/artifacts/ (git-ignored) or
$AUTORESEARCH_SCREENSHOTS.
"""

from __future__ import annotations

import html
import os
import re
import threading
from pathlib import Path
from uuid import uuid4

import pytest
from conftest import PORT, cli, make_repo
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterTags,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.sorting import FlowRunSort
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
from pydantic import BaseModel, ConfigDict

from autoresearch import ledger
from autoresearch.artifacts import artifact_key
from autoresearch.models import LedgerRow
from autoresearch.notifications import LOOP_STOPPED, NEW_BEST, new_best

pytestmark = pytest.mark.timeout(300)
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(os.environ.get("AUTORESEARCH_SCREENSHOTS", Path(__file__).parent / "artifacts"))
UI = f"http://127.0.0.1:{PORT}"


class Night(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    tag: str
    rows: list[LedgerRow]
    runs: list  # the experiment-iteration flow runs, oldest first
    artifacts: dict  # flow run id -> its artifacts
    loop_run: object  # the research-loop flow run
    loop_logs: list[str]  # its log messages


@pytest.fixture(scope="module")
def night(tmp_path_factory) -> Night:
    repo = make_repo(tmp_path_factory.mktemp("ui") / "exp")
    tag = f"ui{uuid4().hex[:6]}"  # unique on the session's server
    result = cli("run", "--repo", str(repo), "--tag", tag, "--iterations", "5")
    assert result.returncode == 0, result.stderr
    with get_client(sync_client=True) as client:
        tagged = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[tag])), sort=FlowRunSort.START_TIME_ASC
        )
        runs = [run for run in tagged if "research-loop" not in run.tags]  # the iterations
        loop_run = next(run for run in tagged if run not in runs)
        logs = []
        for _ in range(120):  # the server may store logs in batches
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[loop_run.id])))
            if any(" rows in results.tsv; best " in log.message for log in logs):
                break
            threading.Event().wait(0.5)
        artifacts = {
            run.id: client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])))
            for run in runs
        }
    rows = ledger.read(repo / "results.tsv", "val_bpb")
    return Night(tag=tag, rows=rows, runs=runs, artifacts=artifacts, loop_run=loop_run, loop_logs=[log.message for log in logs])


def summary_line(night: Night) -> str:
    best = ledger.last_keep(night.rows)
    return f"{night.tag}: ran 5 iterations; 6 rows in results.tsv; best {best.value:.6f} ({best.commit})"


def test_the_research_loop_run_carries_tag_and_proposer_and_logs_its_summary(night: Night):
    assert {night.tag, "mutate"} <= set(night.loop_run.tags)
    assert night.loop_run.name == f"{night.tag} · research loop"
    assert any(message.startswith(summary_line(night)) for message in night.loop_logs), night.loop_logs
    assert any("created branch" in message for message in night.loop_logs)  # the set-up note


def by_key(artifacts: list, key: str):
    return next(a for a in artifacts if a.key == key)


def decision(artifacts: list) -> str:
    """The decision line of an iteration's own report (the markdown artifact without a key)."""
    report = next(a for a in artifacts if a.key is None and a.type == "markdown")
    escaped = re.search(r"\*\*Decision: \w+\*\* — (.+)", report.data)[1]
    return html.unescape(re.sub(r"\\(.)", r"\1", escaped))  # as the page shows it: model text is escaped


def test_every_iteration_publishes_the_ledger_the_summary_and_its_training_progress(night: Night):
    assert len(night.rows) == 6 and len(night.runs) == 6
    for number, run in enumerate(night.runs):
        artifacts = night.artifacts[run.id]
        table = by_key(artifacts, artifact_key("ledger", night.tag))
        assert [row["commit"] for row in _table(table.data)] == [row.commit for row in night.rows[: number + 1]]
        summary = by_key(artifacts, artifact_key("summary", night.tag)).data
        plural = "s" * (number > 0)
        assert summary.startswith(f"## {night.tag}: {number + 1} experiment{plural}, ")
        assert "![progress plot](data:image/png;base64,iVBORw0KGgo" in summary
        assert by_key(artifacts, artifact_key("training", night.tag)).data == 100.0
        assert decision(artifacts)
    assert ("### Top gains" in summary) == (sum(row.status == "keep" for row in night.rows) > 1)


def test_a_new_best_event_for_every_keep_that_beat_the_best_and_one_when_the_loop_stopped(night: Night):
    expected = [rows[-1].commit for rows in (night.rows[: n + 1] for n in range(len(night.rows))) if new_best(rows, "minimize")]
    wait = threading.Event()
    for _ in range(120):  # the server stores events in batches
        with get_client(sync_client=True) as client:
            events = client.read_events(
                filter=EventFilter(
                    event=EventNameFilter(name=[NEW_BEST, LOOP_STOPPED]),
                    resource=EventResourceFilter(id=[f"autoresearch.loop.{night.tag}"]),
                ),
                limit=50,
            ).events
        if len(events) >= len(expected) + 1:
            break
        wait.wait(0.5)
    assert sorted(e.payload["commit"] for e in events if e.event == NEW_BEST) == sorted(expected)
    stopped = [e.payload for e in events if e.event == LOOP_STOPPED]
    best = ledger.last_keep(night.rows)
    assert stopped == [{"reason": "ran 5 iterations", "rows": 6, "best_value": best.value, "best_commit": best.commit}]


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing (apt-get install -y chromium; .ci/run does it)")
def test_the_prefect_ui_tells_the_story_of_the_night(night: Night):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    last = night.runs[-1]
    artifacts = night.artifacts[last.id]
    ledger_key, summary_key, training_key = (artifact_key(kind, night.tag) for kind in ("ledger", "summary", "training"))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(30_000)
        try:
            # The flow-runs list reads like results.tsv: one run per row, named after the idea, tagged with the status.
            page.goto(f"{UI}/v2/runs?tags={night.tag}")
            for run in night.runs:
                page.get_by_text(run.name, exact=True).wait_for()
            assert all(f"iter {n:04d}" in run.name for n, run in enumerate(night.runs))
            page.screenshot(path=SHOTS / "01-flow-runs.png", full_page=True)

            # The research-loop run: its tags and, in its logs, the set-up note and the closing summary.
            page.goto(f"{UI}/flow-runs/flow-run/{night.loop_run.id}")
            page.get_by_text(summary_line(night), exact=False).first.wait_for()
            page.screenshot(path=SHOTS / "01b-research-loop-logs.png", full_page=True)
            page.go_back()

            # The last iteration's artifacts: its report, the ledger, the summary, the training progress.
            page.get_by_text(last.name, exact=True).click()
            page.get_by_role("tab", name="Artifacts").click()
            for key in (ledger_key, summary_key, training_key):
                page.get_by_text(key, exact=True).wait_for()
            page.screenshot(path=SHOTS / "02-iteration-artifacts.png", full_page=True)

            page.get_by_text(f"iteration {len(night.runs) - 1}: ", exact=False).click()
            page.get_by_text(decision(artifacts), exact=False).first.wait_for()  # the decision and its reason
            page.screenshot(path=SHOTS / "03-iteration-report.png", full_page=True)

            page.go_back()
            page.get_by_text(ledger_key, exact=True).click()
            for row in night.rows:  # the whole ledger, as a table
                page.get_by_role("cell", name=row.commit, exact=True).wait_for()
            page.screenshot(path=SHOTS / "04-ledger-table.png", full_page=True)

            page.go_back()
            page.get_by_text(summary_key, exact=True).click()
            plot = page.get_by_role("img", name="progress plot")
            plot.wait_for()
            page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=plot.element_handle())
            page.get_by_role("cell", name="improvement", exact=True).wait_for()  # the summary numbers
            if sum(row.status == "keep" for row in night.rows) > 1:
                page.get_by_text("Top gains", exact=False).first.wait_for()
            page.screenshot(path=SHOTS / "05-summary-with-plot.png", full_page=True)

            # The classic UI (where the links in Prefect's logs lead) renders the plot too.
            page.goto(f"{UI}/artifacts/artifact/{by_key(artifacts, summary_key).id}")
            classic = page.get_by_role("img", name="progress plot")
            classic.wait_for()
            page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=classic.element_handle())
            page.screenshot(path=SHOTS / "06-summary-classic-ui.png", full_page=True)
        finally:
            page.screenshot(path=SHOTS / "last-page.png", full_page=True)
            browser.close()
    print(f"screenshots: {SHOTS}")


def _table(data) -> list[dict]:
    import json

    return json.loads(data) if isinstance(data, str) else data
