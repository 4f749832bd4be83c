"""Run in the Rasa venv by tests/e2e/test_tracker_store.py, with the environment minhu/stack.py gives Rasa:
endpoints.yml's tracker store is Rasa's SQL tracker store, a half-filled request saved by one store is read
back by a new one (what a restart of Rasa does), the pool is small, and on PostgreSQL Rasa's table is in the
schema `rasa`, not among the app's tables. Prints one line per check; exits non-zero on failure."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore, TrackerStore
from rasa.core.utils import AvailableEndpoints
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, ActiveLoop, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

SENDER = "web:check-tracker-store"


def check(name: str, ok: bool) -> None:
    print(f"{name}: {'ok' if ok else 'FAILED'}", flush=True)
    if not ok:
        raise SystemExit(1)


async def main() -> None:
    endpoints = AvailableEndpoints.read_endpoints("endpoints.yml")
    domain = Domain.load("domain.yml")
    store = TrackerStore.create(endpoints.tracker_store, domain)
    check("endpoints.yml configures the SQL tracker store", isinstance(store, SQLTrackerStore))
    assert isinstance(store, SQLTrackerStore)
    events = [
        ActionExecuted("action_listen"),
        UserUttered("楼上养鸽子", {"name": "report_issue", "confidence": 1.0}),
        ActiveLoop("request_form"),
        SlotSet("requested_slot", "community"),
        ActionExecuted("action_listen"),
        UserUttered("安居社区", {"name": "inform", "confidence": 1.0}),
        SlotSet("community", "anju"),
        SlotSet("requested_slot", "compound"),
    ]
    await store.save(DialogueStateTracker.from_events(SENDER, events, domain.slots))
    store.engine.dispose()

    restarted = TrackerStore.create(endpoints.tracker_store, domain)
    tracker = await restarted.retrieve(SENDER)
    check("a new store reads the conversation back", tracker is not None)
    assert tracker is not None
    check("the form is still active", tracker.active_loop_name == "request_form")
    check("the answered slot is kept", tracker.get_slot("community") == "anju")
    check("the next question is the one asked", tracker.get_slot("requested_slot") == "compound")

    assert isinstance(restarted, SQLTrackerStore)
    engine = restarted.engine
    print(f"dialect {engine.dialect.name}, driver {engine.dialect.driver}", flush=True)
    if engine.dialect.name == "postgresql":
        check("a small pool (SQL_POOL_SIZE)", engine.pool.size() == 2)
        with engine.connect() as conn:
            schemas = conn.execute(
                sa.text("SELECT table_schema FROM information_schema.tables WHERE table_name = 'events'")
            ).scalars()
            check("Rasa's table is in the schema rasa only", list(schemas) == ["rasa"])
    restarted.engine.dispose()


asyncio.run(main())
