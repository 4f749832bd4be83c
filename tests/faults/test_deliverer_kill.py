"""`kill -9` of an outbox deliverer in the middle of a batch (two `minhu deliver` processes, as compose runs
them, against the fake Bot API): every notification reaches its resident, none twice except the one whose
send Telegram had accepted when the process died (bot/delivery.py: "one HTTP response and one commit
wide")."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from app.settings import Settings
from minhu.stack import Child, server_env
from tests.bot.fake_api import FakeBotAPI
from tests.conftest import write_test_key_file
from tests.e2e.conftest import free_port
from tests.faults.conftest import PrivateRedis, restart
from tests.pgcluster import PrivatePostgres
from tickets.db import unit_of_work
from tickets.models import Notification
from tickets.outbox import Kind, Recipient, notify
from tickets.service import TicketService

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

RESIDENTS, EACH = 12, 5  # 60 notifications, more than one batch (50)
CHATS = range(7001, 7001 + RESIDENTS)
STARTUP_S = 120.0


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPI]:
    fake = FakeBotAPI(delay=0.04)  # Telegram takes 40 ms a message: a batch lasts ~2 s
    await fake.start()
    yield fake
    await fake.stop()


def deliverer(name: str, cluster: PrivatePostgres, redis: PrivateRedis, api: FakeBotAPI, data: Path) -> Child:
    """`minhu deliver` under minhu/guard.py (its own process group, for kill -9), its /healthz on a port."""
    write_test_key_file(data)
    port = free_port()
    settings = Settings(MINHU_DATA_DIR=data, DATABASE_URL=cluster.url("minhu"))
    env = server_env(settings, free_port()) | {
        "TELEGRAM_BOT_TOKEN": "123456:TEST-TOKEN",
        "TELEGRAM_API_URL": api.url,
        "MINHU_REDIS_URL": redis.url,
        "MINHU_TELEGRAM_RATE": "500",  # the fake's pace, not the rate limit, sets the batch's length
        "MINHU_HEALTH_PORT": str(port),
    }
    command = ["-m", "minhu.cli", "deliver"]
    return Child(name, name, [sys.executable, *command], port, "MINHU_HEALTH_PORT", "/healthz",
                 data / f"{name}.log", env)  # fmt: skip


async def test_a_deliverer_killed_mid_batch_loses_nothing(
    cluster: PrivatePostgres, redis_server: PrivateRedis, api: FakeBotAPI, core: TicketService, tmp_path: Path
) -> None:
    texts: dict[int, str] = {}
    async with unit_of_work(core.sessions) as session:
        for chat in CHATS:
            resident = await core.resident_for(f"telegram:{chat}")
            for i in range(EACH):
                note = notify(session, Kind.REGISTERED, Recipient.RESIDENT, resident.id, None, core.clock.now(),
                              number=f"MH-20261128-{chat}{i}", category="property")  # fmt: skip
                await session.flush()
                texts[note.id] = f"您之前提交的诉求已登记,工单号 MH-20261128-{chat}{i},我们会尽快安排。"

    first = deliverer("deliverer-1", cluster, redis_server, api, tmp_path / "d1")
    second = deliverer("deliverer-2", cluster, redis_server, api, tmp_path / "d2")
    try:
        first.start()
        await asyncio.to_thread(first.wait_healthy, STARTUP_S)
        for _ in range(600):  # the first batch (50) under way: kill it after 15 sends
            if len(api.sent(method="sendMessage")) >= 15:
                break
            await asyncio.sleep(0.01)
        first.kill()  # SIGKILL to its whole process group
        killed_after = len(api.delivered())
        # Its claimed rows wait out their lease (bot/delivery.LEASE, 2 minutes) before anyone sends them:
        # here the lease is run out at once instead of waited for. Nobody else holds a lease now.
        async with unit_of_work(core.sessions) as session:
            await session.execute(
                update(Notification).where(Notification.delivered_at.is_(None)).values(next_attempt_at=None)
            )
        await asyncio.gather(restart(first, STARTUP_S), restart(second, STARTUP_S))  # and a second replica
        for _ in range(300):
            async with core.sessions() as session:
                left = (
                    await session.scalars(select(Notification.id).where(Notification.delivered_at.is_(None)))
                ).all()
            if not left:
                break
            await asyncio.sleep(0.1)
    finally:
        first.stop()
        second.stop()

    accepted = Counter(call.text for call in api.delivered())
    seen = {chat: [c.text for c in api.delivered(chat)] for chat in CHATS}
    twice = {text: n for text, n in accepted.items() if n > 1}
    print(
        f"\ndeliverer kill -9 mid-batch: {len(texts)} notifications; killed after {killed_after} accepted; "
        f"after the restart {sum(accepted.values())} accepted sends, {len(set(accepted))} distinct, "
        f"{len(twice)} sent twice, {len(left)} undelivered"
    )
    print(f"  resident telegram:{CHATS[0]} saw: {seen[CHATS[0]]}")
    assert not left
    assert set(accepted) == set(texts.values())  # every one reached its resident
    assert len(twice) <= 1 and all(n == 2 for n in twice.values()), twice  # at most the one in flight
