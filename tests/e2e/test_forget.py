"""Conversations with the assistant are kept only as long as the privacy notice says, and a resident who asks to
be forgotten is: through the real Rasa server's conversation store (SQLite, as `minhu run` sets it up) and the
real `minhu residents forget` command."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime

import aiohttp

from app.settings import Settings
from minhu import conversations
from tests.e2e.conftest import REPO, Chat, Stack
from tickets.service import TicketService
from tickets.transitions import OPEN


async def turns(http: aiohttp.ClientSession, stack: Stack, sender: str) -> list[str]:
    """What the resident said, as Rasa's store holds it (its API, with the run's token)."""
    url = f"{stack.rasa_url}/conversations/{sender}/tracker?token={stack.token}"
    async with http.get(url) as response:
        assert response.status == 200
        tracker = await response.json()
    return [e["text"] for e in tracker["events"] if e["event"] == "user"]


def age(stack: Stack, sender: str, days: int) -> None:
    """Make a conversation look `days` older (its events' times), as if it had been left that long."""
    with sqlite3.connect(stack.data_dir / "rasa-tracker.db") as db:
        db.execute("UPDATE events SET timestamp = timestamp - ? WHERE sender_id = ?", (days * 86400, sender))


async def test_a_conversation_is_deleted_a_month_after_its_last_message(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    settings = Settings(MINHU_DATA_DIR=stack.data_dir, DATABASE_URL=stack.db_url)
    old, recent = Chat(http, stack, "left-long-ago"), Chat(http, stack, "left-yesterday")
    await old.say("你好")
    await recent.say("你好")
    await asyncio.to_thread(age, stack, "web:left-long-ago", 31)
    await asyncio.to_thread(age, stack, "web:left-yesterday", 29)

    assert await conversations.prune(settings, datetime.now(UTC)) >= 1
    assert await turns(http, stack, "web:left-long-ago") == []
    assert await turns(http, stack, "web:left-yesterday") == ["你好"]


async def test_a_resident_who_asks_is_forgotten(
    stack: Stack, http: aiohttp.ClientSession, core: TicketService
) -> None:
    resident = Chat(http, stack, "forget-me")
    await resident.say("楼道里的灯坏了一个星期了 晚上看不见")
    assert "已受理" in await resident.answer_form()
    neighbour = Chat(http, stack, "neighbour-stays")
    await neighbour.say("你好")

    env = {**os.environ, "MINHU_DATA_DIR": str(stack.data_dir), "DATABASE_URL": stack.db_url}
    env["PYTHONPATH"] = str(REPO)
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "minhu.cli", "residents", "forget", "web:forget-me"],
        cwd=stack.data_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    me = await core.resident_for("web:forget-me")
    assert (me.phone, me.address) == (None, None)
    [ticket] = await core.tickets_of_resident(me.id)
    assert ticket.status in OPEN and ticket.contact_phone  # still being worked: kept
    assert (
        f"仍在办理的工单保留联系方式,办结或撤销后再删除 (still open, kept until they end): {ticket.number}"
        in (done.stdout)
    )
    assert await turns(http, stack, "web:forget-me") == []
    assert await turns(http, stack, "web:neighbour-stays") == ["你好"]
