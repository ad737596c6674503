"""Notifications: Prefect events for "new best" and "loop stopped", and automations that send them.

The loop emits two custom events on the resource `autoresearch.loop.<tag>`:
- `autoresearch.new-best` when a keep beats every earlier keep (not for the baseline);
- `autoresearch.loop.stopped` when `research-loop` ends, with the reason.
`setup_notifications(block)` creates (or updates, by name: never duplicates) one automation per event
whose action sends a message through a notification block the user saved (Slack, email, webhook...).
Emitting never fails the loop: without an API the event is dropped.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from uuid import UUID

from autoresearch.errors import UserError
from autoresearch.models import LedgerRow
from autoresearch.summary import Direction, better

NEW_BEST = "autoresearch.new-best"
LOOP_STOPPED = "autoresearch.loop.stopped"
AUTOMATIONS = {  # name -> (event, subject, body); Jinja templates over the triggering event
    "autoresearch: new best": (
        NEW_BEST,
        "autoresearch {{ event.resource.name }}: new best {{ event.payload.metric }} {{ event.payload.value }}",
        (
            "{{ event.resource.name }}: {{ event.payload.metric }} {{ event.payload.previous }} -> {{ event.payload.value }} "
            "at {{ event.payload.commit }} ({{ event.payload.description }}), experiment #{{ event.payload.number }} "
            "in {{ event.resource['autoresearch.repo'] }}"
        ),
    ),
    "autoresearch: loop stopped": (
        LOOP_STOPPED,
        "autoresearch {{ event.resource.name }} stopped: {{ event.payload.reason }}",
        (
            "{{ event.resource.name }} stopped ({{ event.payload.reason }}) after {{ event.payload.rows }} runs; best "
            "{{ event.payload.best_value }} at {{ event.payload.best_commit }} in {{ event.resource['autoresearch.repo'] }}"
        ),
    ),
}
logger = logging.getLogger("autoresearch.notifications")


def loop_resource(tag: str, repo: Path | str) -> dict[str, str]:
    return {"prefect.resource.id": f"autoresearch.loop.{tag}", "prefect.resource.name": tag, "autoresearch.repo": str(repo)}


def new_best(rows: list[LedgerRow], direction: Direction) -> tuple[int, LedgerRow, float] | None:
    """(number, row, previous best) when the last row is a keep that beats every earlier keep."""
    if not rows or rows[-1].status != "keep" or not math.isfinite(rows[-1].value):
        return None
    earlier = [row.value for row in rows[:-1] if row.status == "keep" and math.isfinite(row.value)]
    if not earlier:
        return None  # the baseline sets the bar; it is no news
    previous = max(earlier, key=lambda value: better(value, 0.0, direction))
    return (len(rows) - 1, rows[-1], previous) if better(rows[-1].value, previous, direction) > 0 else None


def emit_new_best(tag: str, repo: Path | str, rows: list[LedgerRow], metric: str, direction: Direction):
    """Emit `autoresearch.new-best` if the last row is one. Returns the event (None: no news, or no API)."""
    found = new_best(rows, direction)
    if found is None:
        return None
    number, row, previous = found
    payload = {
        "metric": metric,
        "value": row.value,
        "previous": previous,
        "commit": row.commit,
        "description": row.description,
        "number": number,
    }
    return _emit(NEW_BEST, tag, repo, payload)


def emit_loop_stopped(tag: str, repo: Path | str, reason: str, rows: int, best_value: float | None, best_commit: str | None):
    """Emit `autoresearch.loop.stopped` (research-loop calls it when it ends, for any reason)."""
    payload = {"reason": reason, "rows": rows, "best_value": best_value, "best_commit": best_commit}
    return _emit(LOOP_STOPPED, tag, repo, payload)


def _emit(event: str, tag: str, repo: Path | str, payload: dict):
    from prefect.events import emit_event

    try:
        return emit_event(event=event, resource=loop_resource(tag, repo), payload=payload)
    except Exception as exc:  # noqa: BLE001 (a notification must never stop the research)
        logger.warning("could not emit %s: %s", event, exc)
        return None


def automations(block_document_id: UUID) -> list:
    """The automations for `block_document_id`, one per event, as Prefect models (pure)."""
    from datetime import timedelta

    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

    return [
        AutomationCore(
            name=name,
            description=f"Sends {event} events of autoresearch loops through a notification block.",
            trigger=EventTrigger(
                expect={event},
                match={"prefect.resource.id": "autoresearch.loop.*"},
                posture=Posture.Reactive,
                threshold=1,
                within=timedelta(0),
            ),
            actions=[SendNotification(block_document_id=block_document_id, subject=subject, body=body)],
        )
        for name, (event, subject, body) in AUTOMATIONS.items()
    ]


def find_notification_block(client, block: str) -> UUID:
    """The id of the saved notification block named `block` (`name`, or `type-slug/name` like Block.load)."""
    slug, _, name = block.rpartition("/")
    matches = [
        doc
        for doc in client.read_block_documents(include_secrets=False)
        if doc.name == name and (not slug or (doc.block_type and doc.block_type.slug == slug))
    ]
    notify = [doc for doc in matches if doc.block_schema and "notify" in doc.block_schema.capabilities]
    if not notify:
        what = "is not a notification block" if matches else "does not exist on this Prefect server"
        raise UserError(f"block {block!r} {what}; create one in the UI (Blocks > Slack Webhook, Email, ...) or pass its name")
    if len(notify) > 1:
        kinds = ", ".join(sorted(f"{doc.block_type.slug}/{doc.name}" for doc in notify))
        raise UserError(f"several notification blocks are named {name!r} ({kinds}); pass one as type-slug/name")
    return notify[0].id


def setup_notifications(block: str) -> list[str]:
    """Create or update (same name: updated, never duplicated) the automations. Returns their names."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        block_id = find_notification_block(client, block)
        for automation in automations(block_id):
            existing = client.read_automations_by_name(automation.name)
            if existing:
                client.update_automation(existing[0].id, automation)
            else:
                client.create_automation(automation)
    return list(AUTOMATIONS)
