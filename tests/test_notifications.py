"""Notifications: new-best detection (pure), events on the real server, automations (idempotent) that really send."""

from __future__ import annotations

import json
import queue
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from conftest import cli
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
from prefect.events.worker import EventsWorker

from autoresearch.errors import UserError
from autoresearch.models import LedgerRow
from autoresearch.notifications import (
    AUTOMATIONS,
    LOOP_STOPPED,
    NEW_BEST,
    emit_loop_stopped,
    emit_new_best,
    new_best,
    setup_notifications,
)


def rows(*values: tuple[float, str]) -> list[LedgerRow]:
    return [
        LedgerRow(commit=f"c{n:06d}", value=v, memory_gb=1.0, status=s, description=f"idea {n}")
        for n, (v, s) in enumerate(values)
    ]


def test_new_best_is_a_keep_that_beats_every_earlier_keep():
    assert new_best(rows((1.0, "keep")), "minimize") is None  # the baseline is no news
    number, row, previous = new_best(rows((1.0, "keep"), (1.1, "discard"), (0.9, "keep")), "minimize")
    assert (number, row.value, previous) == (2, 0.9, 1.0)
    assert new_best(rows((1.0, "keep"), (0.9, "keep"), (0.905, "keep")), "minimize") is None  # a simplification keep
    assert new_best(rows((1.0, "keep"), (0.9, "discard")), "minimize") is None
    assert new_best(rows((1.0, "keep"), (0.0, "crash")), "minimize") is None
    assert new_best(rows((0.5, "keep"), (0.6, "keep")), "maximize")[2] == 0.5
    assert new_best([], "minimize") is None


@pytest.fixture
def webhook():
    """A local HTTP endpoint that records the bodies posted to it."""
    received: queue.Queue = queue.Queue()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.put(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()


def _automations() -> dict:
    with get_client(sync_client=True) as client:
        return {a.name: a for a in client.read_automations() if a.name in AUTOMATIONS}


def test_setup_is_idempotent_and_the_automations_really_notify(webhook):
    url, received = webhook
    block = CustomWebhookNotificationBlock(name="autoresearch", url=url, json_data={"subject": "{{subject}}", "body": "{{body}}"})
    block.save("ar-test-hook", overwrite=True)

    assert setup_notifications("ar-test-hook") == list(AUTOMATIONS)
    first = _automations()
    again = cli("notify", "--block", "custom-webhook/ar-test-hook")  # again, through the CLI: updated, not duplicated
    assert again.returncode == 0 and "send through block 'custom-webhook/ar-test-hook'" in again.stdout, again.stderr
    second = _automations()
    assert set(second) == set(AUTOMATIONS) and {a.id for a in first.values()} == {a.id for a in second.values()}
    with get_client(sync_client=True) as client:
        assert sum(a.name in AUTOMATIONS for a in client.read_automations()) == 2
    trigger = second["autoresearch: new best"].trigger
    assert trigger.expect == {NEW_BEST} and second["autoresearch: loop stopped"].trigger.expect == {LOOP_STOPPED}

    night = rows((1.0, "keep"), (0.95, "keep"))
    assert emit_new_best("nightly", "/exp", night, "val_bpb", "minimize") is not None
    assert emit_new_best("nightly", "/exp", night[:1], "val_bpb", "minimize") is None
    emit_loop_stopped("nightly", "/exp", "ran 5 iterations", rows=6, best_value=0.95, best_commit="c000001")
    EventsWorker.drain_all()

    messages = [received.get(timeout=90), received.get(timeout=90)]
    subjects = sorted(m["subject"] for m in messages)
    assert subjects == ["autoresearch nightly stopped: ran 5 iterations", "autoresearch nightly: new best val_bpb 0.95"]
    bodies = " ".join(m["body"] for m in messages)
    assert "val_bpb 1.0 -> 0.95 at c000001 (idea 1), experiment #1 in /exp" in bodies
    assert "after 6 runs; best 0.95 at c000001 in /exp" in bodies

    events = _stored_events("autoresearch.loop.nightly")  # and the events are on the server, on the loop's resource
    assert sorted(e.event for e in events) == [LOOP_STOPPED, NEW_BEST]
    assert next(e for e in events if e.event == NEW_BEST).payload["commit"] == "c000001"


def _stored_events(resource: str, expected: int = 2, attempts: int = 120) -> list:
    """The events of `resource`, once the server has stored `expected` of them (it persists in batches)."""
    wait = threading.Event()
    with get_client(sync_client=True) as client:
        for _ in range(attempts):
            query = EventFilter(event=EventNameFilter(name=[NEW_BEST, LOOP_STOPPED]), resource=EventResourceFilter(id=[resource]))
            events = client.read_events(filter=query, limit=50).events
            if len(events) >= expected:
                break
            wait.wait(0.5)
    return events


def test_setup_refuses_unknown_and_non_notification_blocks():
    with pytest.raises(UserError, match="'no-such-block' does not exist on this Prefect server"):
        setup_notifications("no-such-block")
    Secret(value="x").save("ar-not-a-notifier", overwrite=True)
    with pytest.raises(UserError, match="'ar-not-a-notifier' is not a notification block"):
        setup_notifications("ar-not-a-notifier")


def test_notify_cli_errors_are_one_line():
    unknown = cli("notify", "--block", "no-such-block")
    assert unknown.returncode == 2 and unknown.stderr.startswith("error: block 'no-such-block' does not exist")
    no_server = cli("notify", "--block", "x", env={"PREFECT_API_URL": ""})
    assert no_server.returncode == 2 and "notify needs a Prefect server" in no_server.stderr
