"""The database down or hanging: every action still answers, politely and in time; a request or a hand-off
is saved for later and the resident is told so; a form answer is never filled with something unchecked.

The database is really away: a PostgreSQL URL to a loopback port nothing listens on (refused), a loopback
server that accepts and never answers (hanging: the time limit ends the call), and an action server that
could not connect in the first place (refused, or a database nobody migrated)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import ActionExecutor, CollectingDispatcher

import actions.runtime
from actions.guard import FORM_BUSY_TEXT
from actions.runtime import ORG_DATA_TTL_S, RUNTIME, PendingStore
from actions.texts import (
    HANDOFF_SAVED_TEXT,
    HANDOFF_SAVED_UNPLACED_TEXT,
    PRIVACY_NOTICE,
    SAVED_FOR_RETRY_TEXT,
)
from app.settings import Settings
from tests.actions.conftest import DOMAIN_FORMS, READY, Bot, buttons, texts, tracker
from tests.e2e.conftest import free_port
from tickets.catalogue import Catalogue
from tickets.clock import ManualClock
from tickets.db import create_engine, session_factory
from tickets.service import TicketService

NUMBER = "MH-20261123-0001"
RATED = {"fb_ticket": NUMBER, "fb_contacted": "yes", "fb_solved": "yes", "fb_rating": "satisfied"}


def answering(slot: str, value: str, form: str, **slots: Any) -> Tracker:
    """The tracker a form's validation action gets: `value` just given for `slot`."""
    return tracker(
        value,
        "affirm",
        slots={**slots, slot: value, "requested_slot": slot},
        events=[{"event": "user", "text": value}, {"event": "slot", "name": slot, "value": value}],
        form=form,
    )


# What each action is asked with the database away, and a sign of the polite answer it must give.
CASES: dict[str, tuple[Tracker, str]] = {
    # Nothing of a new request needs the database until it is submitted: the form opens.
    "action_start_request": (tracker("3栋电梯坏了两天了,老人下不了楼", "property"), "我来帮您登记"),
    "validate_request_form": (answering("community", "安居社区", "request_form"), FORM_BUSY_TEXT),
    "action_ask_community": (tracker(), "请问您住在哪个社区"),
    "action_ask_compound": (tracker(slots={"community": "安居社区"}), "在哪个小区"),
    "action_ask_confirm": (tracker(slots={**READY, "confirm": None}), "请核对"),
    "action_submit_request": (tracker(slots=READY), SAVED_FOR_RETRY_TEXT),
    "action_check_status": (tracker(f"查一下 {NUMBER}", "check_status"), "请稍后再试"),
    "action_handle_deny": (tracker(f"撤销 {NUMBER}", "deny"), "请稍后再试"),
    "action_start_feedback": (tracker("我来评价一下", "feedback"), "请稍后再试"),
    "validate_feedback_form": (answering("fb_rating", "嗯嗯", "feedback_form"), "满意"),
    "action_submit_feedback": (tracker(slots=RATED), "请稍后再试"),
    "action_handoff": (
        tracker(
            "转人工",
            "human_handoff",
            slots={"community": "安居社区"},
            events=[{"event": "user", "text": "房子的事说不清 转人工"}],
        ),
        HANDOFF_SAVED_TEXT,
    ),
    # The community typed after the hand-off asked for it: saved like any hand-off.
    "action_handoff_community": (tracker("锦江社区", "nlu_fallback"), "我们已经保存了您的留言和转人工的请求"),
    "action_fallback": (tracker("今天股票涨不涨", "out_of_scope"), "12345"),
}


@asynccontextmanager
async def hanging_server() -> AsyncIterator[int]:
    """A loopback port that accepts connections and never says a word (a database that hangs)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.fixture(params=["refused", "hanging", "never connected", "not migrated"])
async def down(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    clock: ManualClock,
    catalogue: Catalogue,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[str]:
    monkeypatch.setattr(actions.runtime, "CALL_TIMEOUT", 0.5)
    pending = PendingStore(tmp_path / "pending_requests.jsonl")
    async with hanging_server() as hanging_port:
        port = hanging_port if request.param == "hanging" else free_port()
        url = f"postgresql+asyncpg://postgres@127.0.0.1:{port}/minhu"
        if request.param in ("never connected", "not migrated"):
            if request.param == "not migrated":
                url = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
            settings = Settings(MINHU_DATA_DIR=tmp_path, DATABASE_URL=url)
            monkeypatch.setattr(actions.runtime, "get_settings", lambda: settings)
            RUNTIME.set_service(None, pending)
            yield request.param
        else:
            engine = create_engine(url)
            RUNTIME.set_service(
                TicketService(session_factory(engine), clock=clock, catalogue=catalogue), pending
            )
            yield request.param
            await engine.dispose()
        RUNTIME.set_service(None)


async def run(name: str, t: Tracker) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    served = ActionExecutor()
    served.register_package("actions")
    dispatcher = CollectingDispatcher()
    events = await served.actions[name](dispatcher, t, {"forms": DOMAIN_FORMS})
    return dispatcher.messages, {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


async def test_every_action_answers_politely_and_in_time(down: str) -> None:
    served = ActionExecutor()
    served.register_package("actions")
    for name in sorted(served.actions):
        t, expected = CASES.get(name, (tracker("你好", "greet"), ""))
        started = time.monotonic()
        messages, _ = await run(name, t)
        said = texts(messages)
        assert time.monotonic() - started < 5, (down, name)
        assert re.search(r"[\u4e00-\u9fff]", said), (down, name, said)  # never silence
        assert expected in said, (down, name, said)
        assert "没太明白" not in said and "minhu db upgrade" not in said, (down, name, said)


async def test_form_answers_are_left_unfilled(down: str) -> None:
    for slot, value in (("community", "安居社区"), ("compound", "幸福家园")):
        messages, slots = await run("validate_request_form", answering(slot, value, "request_form"))
        assert slots == {slot: None} and texts(messages) == FORM_BUSY_TEXT


async def test_the_request_and_the_handoff_are_saved(down: str) -> None:
    _, slots = await run("action_start_request", CASES["action_start_request"][0])
    assert slots["request_next"] == "request" and slots["description"] == "3栋电梯坏了两天了,老人下不了楼"
    await run("action_submit_request", tracker(sender="web:bob", slots=READY))
    events = [{"event": "user", "text": "我的电话13912345678 房子的事说不清"}]
    messages, _ = await run(
        "action_handoff", tracker("转人工", "human_handoff", sender="web:carol", events=events)
    )
    # No community in the conversation: handed over later if their home is on record, else they ask again.
    assert texts(messages) == HANDOFF_SAVED_UNPLACED_TEXT
    saved = RUNTIME.pending.all()
    assert [(p.kind, p.channel_id) for p in saved] == [("request", "web:bob"), ("handoff", "web:carol")]
    assert saved[0].text == READY["description"] and saved[0].community == "安居社区"
    assert "139****5678" in saved[1].text and "13912345678" not in saved[1].text  # kept masked


async def test_a_first_time_resident_is_told_what_is_stored_even_then(down: str) -> None:
    messages, slots = await run("action_start_request", CASES["action_start_request"][0])
    assert PRIVACY_NOTICE in texts(messages) and slots["privacy_told"] is True


async def test_the_org_lists_read_before_serve_while_the_database_is_away(
    bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = 1000.0
    monkeypatch.setattr(RUNTIME, "monotonic", lambda: start)
    await run("action_ask_community", tracker())  # read while the database answers
    monkeypatch.setattr(actions.runtime, "CALL_TIMEOUT", 0.5)
    engine = create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/minhu")
    monkeypatch.setattr(bot.service, "sessions", session_factory(engine))
    monkeypatch.setattr(RUNTIME, "monotonic", lambda: start + ORG_DATA_TTL_S + 1)
    try:
        messages, _ = await run("action_ask_community", tracker())
        assert buttons(messages) == ["安居社区", "锦江社区"]
        _, slots = await run("validate_request_form", answering("community", "锦江", "request_form"))
        assert slots["community"] == "锦江社区"
    finally:
        await engine.dispose()
