"""Outbox delivery x2 (two deliverer processes, each with its own engine) on PostgreSQL: the claims (SKIP
LOCKED and a lease, tickets/outbox.py) give each notification to one of them, so none is sent twice; and
Telegram's per-bot limit holds for both together through the bucket they share in Redis
(app/ratelimit.py), not for each alone."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from app.ratelimit import TELEGRAM_BURST, SharedBucket, telegram_limit
from bot.app import build_application, minhu_of
from bot.delivery import Delivery
from tests.bot.conftest import FakeRasa, Telegram, config_for
from tests.bot.fake_api import FakeBotAPI
from tests.conftest import Org, write_test_key_file
from tickets.clock import ManualClock
from tickets.db import create_engine, session_factory
from tickets.service import NewTicket, TicketService

REPO = Path(__file__).resolve().parents[2]
REDIS = "redis://127.0.0.1:6379/0"
RATE = 20.0  # messages a second for both together (Telegram's is about 30; lower keeps the test short)
OFFERS = 40


async def redis_up() -> bool:
    client = aioredis.from_url(REDIS, socket_connect_timeout=1)  # type: ignore[no-untyped-call]
    try:
        return bool(await client.ping())
    except OSError:
        return False
    finally:
        await client.aclose()


# SQLite has one writer at a time: nothing runs at once to prove
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_two_deliverers_send_each_notification_once_and_share_the_rate_limit(
    tg: Telegram, org: Org, api: FakeBotAPI, rasa: FakeRasa, clock: ManualClock, db_url: str
) -> None:
    if not await redis_up():  # CI has Redis on this machine: there, its absence fails the run
        (pytest.fail if os.environ.get("CI") == "true" else pytest.skip)("no Redis at 127.0.0.1:6379")
    numbers = []
    for i in range(OFFERS):  # each offered to vol-a1 (Telegram 1001) among others
        resident = await org.resident(f"r{i}", compound="安居苑")
        numbers.append(
            (await org.service.create_ticket(NewTicket(resident, "eldercare", f"助餐 {i}"))).number
        )

    # The second deliverer: another application with its own engine, as another process would have.
    engine = create_engine(db_url)
    other = build_application(config_for(api, rasa.url), TicketService(session_factory(engine), clock=clock))
    bot_key = f"test-{uuid.uuid4().hex}:TOKEN"  # a bucket of this test's own
    limits = [telegram_limit(REDIS, bot_key, RATE), telegram_limit(REDIS, bot_key, RATE)]
    try:
        async with other:
            deliverers = [
                Delivery(tg.minhu, tg.application.bot, limit=limits[0]),
                Delivery(minhu_of(other), other.bot, limit=limits[1]),
            ]

            async def drain(delivery: Delivery) -> int:
                sent = 0
                while batch := await delivery.run_once(limit=5):
                    sent += batch
                return sent

            sent = await asyncio.gather(*(drain(d) for d in deliverers))
        await minhu_of(other).relay.rasa.close()
    finally:
        for limit in limits:
            assert isinstance(limit, SharedBucket)
            await limit.close()
        await engine.dispose()

    messages = [c for c in api.delivered(1001) if c.method == "sendMessage"]
    assert sorted(c.text.splitlines()[0] for c in messages) == sorted(
        f"📋 新工单 {n}(先接先得)" for n in numbers
    )
    assert all(sent) and sum(sent) >= OFFERS  # both worked; every offer to 1001 once (others go elsewhere)
    # Every message of the bot, to anyone, by both deliverers: in no second more than the rate (and the
    # burst the bucket starts with).
    times = sorted(c.at for c in api.calls if c.method == "sendMessage")
    busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert busiest <= RATE + TELEGRAM_BURST, busiest
    assert (len(times) - TELEGRAM_BURST) / (times[-1] - times[0]) <= RATE * 1.05


# the process, not the backend, is the point
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_minhu_deliver_is_a_deliverer_process_of_its_own(
    org: Org, api: FakeBotAPI, db_url: str, tmp_path: Path
) -> None:
    """`minhu deliver` (one more deliverer beside the bot) as a real process: it sends what is due."""
    resident = await org.resident("r", compound="安居苑")
    number = (await org.service.create_ticket(NewTicket(resident, "eldercare", "助餐"))).number
    write_test_key_file(tmp_path)  # the phones in the database are encrypted with the tests' key
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "DATABASE_URL": db_url,
        "MINHU_DATA_DIR": str(tmp_path),
        "TELEGRAM_BOT_TOKEN": "123456:TEST-TOKEN",
        "TELEGRAM_API_URL": api.url,
    }
    deliverer = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "minhu.cli", "deliver", cwd=tmp_path, env=env, stderr=asyncio.subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while not api.delivered(1001):
            if deliverer.returncode is not None:
                err = await deliverer.stderr.read() if deliverer.stderr else b""
                raise AssertionError(err.decode()[-2000:])
            assert time.monotonic() < deadline, "nothing delivered within 60 s"
            await asyncio.sleep(0.2)
    finally:
        deliverer.terminate()
        await asyncio.wait_for(deliverer.wait(), 30)
    assert [c.text.splitlines()[0] for c in api.delivered(1001)] == [f"📋 新工单 {number}(先接先得)"]
