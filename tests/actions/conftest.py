"""Action tests: rasa-sdk's Tracker and CollectingDispatcher against the real database (SQLite and
PostgreSQL via the shared fixtures)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.runtime import REPLAY_EVERY_S, RUNTIME, PendingStore
from tests.conftest import Org
from tickets.service import TicketService

# A request form whose every slot is filled and confirmed: what action_submit_request registers.
READY = {
    "category": "property",
    "description": "3栋电梯坏了两天了,老人下不了楼",
    "community": "安居社区",
    "compound": "安居苑",
    "address": "3栋",
    "phone": "+8613912345678",
    "urgency": "normal",
    "confirm": "yes",
}


@pytest.fixture
async def bot(service: TicketService, org: Org, tmp_path: Path) -> AsyncIterator[Bot]:
    RUNTIME.set_service(service, PendingStore(tmp_path / "pending_requests.jsonl"))
    RUNTIME.replay_every = (
        3600.0  # tests replay by hand, or set a short interval (tests/actions/test_replay.py)
    )
    yield Bot(service, org)
    RUNTIME.set_service(None)
    RUNTIME.replay_every = REPLAY_EVERY_S


def tracker(
    text: str = "",
    intent: str = "",
    *,
    sender: str = "web:alice",
    slots: dict[str, Any] | None = None,
    entities: list[dict[str, Any]] | None = None,
    events: list[dict[str, Any]] | None = None,
    form: str | None = None,
) -> Tracker:
    return Tracker(
        sender_id=sender,
        slots=dict(slots or {}),
        latest_message={
            "text": text,
            "intent": {"name": intent, "confidence": 0.95},
            "entities": entities or [],
        },
        events=events or [],
        paused=False,
        followup_action=None,
        active_loop={"name": form} if form else {},
        latest_action_name="action_listen",
    )


class Bot:
    """Runs one action and keeps what it said and the slots it set."""

    def __init__(self, service: TicketService, org: Org) -> None:
        self.service = service
        self.org = org

    async def run(self, action: Action, t: Tracker) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        dispatcher = CollectingDispatcher()
        events = await action.run(dispatcher, t, {"forms": DOMAIN_FORMS})
        slots = {e["name"]: e["value"] for e in events if e.get("event") == "slot"}
        return dispatcher.messages, slots


DOMAIN_FORMS = {
    "request_form": {
        "required_slots": ["description", "community", "compound", "address", "phone", "urgency", "confirm"]
    },
    "feedback_form": {"required_slots": ["fb_contacted", "fb_solved", "fb_rating"]},
}


def texts(messages: list[dict[str, Any]]) -> str:
    return "\n".join(str(m.get("text") or "") for m in messages)


def buttons(messages: list[dict[str, Any]]) -> list[str]:
    return [b["title"] for m in messages for b in m.get("buttons") or []]
