"""Killing bot processes (docs/deploy.md, Telegram): real `minhu bot --worker` and `minhu bot --receiver`
processes on PostgreSQL against the fake Bot API and a slow fake Rasa, one of them killed with SIGKILL while
updates are in flight. Afterwards every update is done, and each had its effects once: one reply to each
message, one introduction per /start, one resident per Telegram user."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.residents import START
from tests.bot.conftest import FakeRasa, Telegram
from tests.bot.fake_api import FakeBotAPI
from tests.bot.test_inbox import recorded
from tests.conftest import Org, write_test_key_file
from tickets.clock import ManualClock
from tickets.inbox import Inbox
from tickets.models import InboxUpdate, Resident, Ticket, TicketEvent
from tickets.service import NewTicket

pytestmark = pytest.mark.parametrize("db_url", ["postgres"], indirect=True)

REPO = Path(__file__).resolve().parents[2]
RESIDENTS = 10
TEXTS = 4  # messages each resident sends after /start


@asynccontextmanager
async def minhu_bot(
    role: str, db_url: str, api: FakeBotAPI, rasa: FakeRasa, data_dir: Path, log: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    write_test_key_file(data_dir)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "DATABASE_URL": db_url,
        "MINHU_DATA_DIR": str(data_dir),
        "MINHU_RASA_URL": rasa.url,
        "TELEGRAM_BOT_TOKEN": "123456:TEST-TOKEN",
        "TELEGRAM_API_URL": api.url,
    }
    args = ["--worker", "--concurrency", "4"] if role == "worker" else ["--receiver"]
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "minhu.cli", "bot", *args, cwd=data_dir, env=env, stdout=out, stderr=out
        )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def until(condition: Callable[[], Awaitable[bool]], what: str, limit: float = 90.0) -> None:
    deadline = time.monotonic() + limit
    while not await condition():
        assert time.monotonic() < deadline, f"not within {limit:.0f} s: {what}"
        await asyncio.sleep(0.05)


async def done_count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(
            await conn.scalar(
                select(func.count()).select_from(InboxUpdate).where(InboxUpdate.done_at.isnot(None))
            )
            or 0
        )


def conversation(tg: Telegram, *, locations: bool = False) -> list[dict[str, object]]:
    """Each resident: /start, (a location for their ticket,) then TEXTS messages; interleaved between
    residents as Telegram would."""
    updates = [tg.text_update(6000 + r, "/start") for r in range(RESIDENTS)]
    if locations:
        here = {"latitude": 30.5928, "longitude": 114.3055}
        updates += [tg.message(6000 + r, location=here) for r in range(RESIDENTS)]
    updates += [tg.text_update(6000 + r, f"{r}号居民第{i}句") for i in range(TEXTS) for r in range(RESIDENTS)]
    return updates


def repeated_effects(api: FakeBotAPI, rasa: FakeRasa) -> int:
    """Every expected reply is there (none lost); returns how many came twice (or more)."""
    repeats = 0
    for r in range(RESIDENTS):
        texts = Counter(c.text for c in api.delivered(6000 + r))  # what Telegram accepted
        for expected in [START, *(f"收到:{r}号居民第{i}句" for i in range(TEXTS))]:
            assert texts[expected] >= 1, (r, expected, texts)
            repeats += texts[expected] - 1
        asked = [m for s, m in rasa.received if s == f"telegram:{6000 + r}"]
        assert list(dict.fromkeys(asked)) == [f"{r}号居民第{i}句" for i in range(TEXTS)]  # all, in order
        answers = [c.text for c in api.delivered(6000 + r) if c.text.startswith("收到:")]
        assert list(dict.fromkeys(answers)) == [f"收到:{r}号居民第{i}句" for i in range(TEXTS)]
    return repeats


async def open_tickets(org: Org) -> list[Ticket]:
    """Each resident has a ticket open: their location is attached to it."""
    tickets = []
    for r in range(RESIDENTS):
        resident = await org.service.resident_for(f"telegram:{6000 + r}")
        await org.service.remember_resident(resident.id, community="anju")
        tickets.append(await org.service.create_ticket(NewTicket(resident.id, "facility_repair", f"路灯{r}")))
    return tickets


async def test_a_worker_killed_in_the_middle_of_a_handlers_call_to_telegram(
    tg: Telegram, org: Org, api: FakeBotAPI, rasa: FakeRasa, clock: ManualClock, engine: AsyncEngine,
    db_url: str, tmp_path: Path,
) -> None:  # fmt: skip
    """Deterministic: the first message a worker sends hangs at Telegram (inside a /start's transaction, its
    resident not committed); the worker is killed there. The other worker does the update again: one
    resident, the introduction accepted once (the hung call never was), the call logged as in doubt."""
    updates = conversation(tg)
    assert await Inbox(engine, clock).record([recorded(u) for u in updates]) == len(updates)
    api.fail_next(1, status=0)  # the next sending call never gets an answer
    log = tmp_path / "workers.log"
    async with minhu_bot("worker", db_url, api, rasa, tmp_path / "one", log) as one:
        await asyncio.wait_for(api.hung.wait(), 60)
        one.send_signal(signal.SIGKILL)
        await one.wait()
    async with minhu_bot("worker", db_url, api, rasa, tmp_path / "two", log):
        await until(lambda: _at_least(engine, len(updates)), "every update done by the other worker")
    in_doubt = log.read_text().count("bot api call in doubt")
    repeats = repeated_effects(api, rasa)
    print(f"\n{len(updates)} updates; calls in doubt after the kill: {in_doubt}; replies twice: {repeats}")
    # The hung call, and whatever else the killed worker's other tasks had under way at Telegram; the hung
    # one never reached Telegram, so it cannot be a repeat.
    assert in_doubt >= 1 and repeats <= in_doubt - 1
    async with engine.connect() as conn:
        residents = (await conn.scalars(select(Resident.channel_id))).all()
    assert sorted(residents) == sorted(f"telegram:{6000 + r}" for r in range(RESIDENTS))


async def test_killing_a_worker_with_updates_in_flight_loses_none_and_repeats_no_effect(
    tg: Telegram, org: Org, api: FakeBotAPI, rasa: FakeRasa, clock: ManualClock, engine: AsyncEngine,
    db_url: str, tmp_path: Path,
) -> None:  # fmt: skip
    rasa.delay = 0.3  # each answer takes a while: a worker has several updates in flight at any moment
    tickets = await open_tickets(org)
    updates = conversation(tg, locations=True)
    inbox = Inbox(engine, clock)
    assert await inbox.record([recorded(u) for u in updates]) == len(updates)
    log = tmp_path / "workers.log"
    async with (
        minhu_bot("worker", db_url, api, rasa, tmp_path / "one", log) as one,
        minhu_bot("worker", db_url, api, rasa, tmp_path / "two", log) as two,
    ):
        await until(lambda: _at_least(engine, 12), "12 updates done")
        # More updates held than one worker can hold (its concurrency, 4): the one killed holds some.
        await until(lambda: _held_more_than(engine, 4), "both workers busy")
        one.send_signal(signal.SIGKILL)
        await one.wait()
        at_kill = await done_count(engine)
        await until(lambda: _at_least(engine, len(updates)), "every update done by the other worker")
        assert two.returncode is None
    output = log.read_text()
    resumed = output.count("update handled before; relaying")
    replayed = output.count("bot api call replayed")
    in_doubt = output.count("bot api call in doubt")
    asked_twice = len(rasa.received) - RESIDENTS * TEXTS
    repeats = repeated_effects(api, rasa)
    print(
        f"\n{len(updates)} updates, worker killed with {at_kill} done; after the kill: {resumed} resumed "
        f"after their commit, {replayed} Bot API calls answered from the journal, {in_doubt} in doubt (cut "
        f"off by the kill) made again; replies sent twice: {repeats}; {asked_twice} message(s) asked of Rasa "
        "again (in flight there at the kill)"
    )
    assert repeats <= in_doubt  # only a call the kill cut off may have gone twice, and it is logged
    assert asked_twice <= 4  # at most the killed worker's in-flight updates (its concurrency)
    async with engine.connect() as conn:
        residents = (await conn.scalars(select(Resident.channel_id))).all()
        attached = Counter(
            (await conn.scalars(select(TicketEvent.ticket_id).where(TicketEvent.action == "attach"))).all()
        )
    assert sorted(residents) == sorted(f"telegram:{6000 + r}" for r in range(RESIDENTS))
    assert attached == {ticket.id: 1 for ticket in tickets}  # each location attached once
    for r, ticket in enumerate(tickets):
        said = Counter(c.text for c in api.delivered(6000 + r))[
            f"收到,位置已附在您的诉求 {ticket.number} 上,办理人员可以看到。"
        ]
        assert 1 <= said <= 1 + in_doubt


async def _held_more_than(engine: AsyncEngine, count: int) -> bool:
    """Pending updates locked by workers (claimed, not done) right now: more than `count`?"""
    pending = select(InboxUpdate.update_id).where(InboxUpdate.done_at.is_(None))
    async with engine.connect() as conn, conn.begin():
        everything = len((await conn.execute(pending)).all())
        free = len((await conn.execute(pending.with_for_update(skip_locked=True))).all())
    return everything - free > count


async def _at_least(engine: AsyncEngine, count: int) -> bool:
    return await done_count(engine) >= count


async def test_killing_the_receiver_and_starting_another_records_each_update_once(
    tg: Telegram, org: Org, api: FakeBotAPI, rasa: FakeRasa, engine: AsyncEngine, db_url: str, tmp_path: Path
) -> None:
    """Long polling: Telegram (the fake) hands out what was not acknowledged again, to the next receiver."""
    updates = conversation(tg)
    api.page = 7  # getUpdates answers at most 7 at a time: many batches, the kill lands between two
    api.updates_delay = 0.2  # and takes a while: the test sees the first batches before the last is out
    api.updates.extend(updates)
    log = tmp_path / "bot.log"

    async def recorded_count() -> int:
        async with engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(InboxUpdate)) or 0)

    def handed_out() -> int:
        return sum(len(c.result or []) for c in api.calls if c.method == "getUpdates")

    async with minhu_bot("receiver", db_url, api, rasa, tmp_path / "r1", log) as first:
        await until(lambda: _more_than(recorded_count, 14), "the first receiver recorded some")
        # Hold the receiver's next insert (a table lock), so the batch Telegram has just handed it is neither
        # recorded nor acknowledged when it dies.
        async with engine.connect() as blocker, blocker.begin():
            await blocker.execute(text("LOCK TABLE telegram_inbox IN SHARE ROW EXCLUSIVE MODE"))
            before = await recorded_count()

            async def got_a_batch_it_cannot_record() -> bool:
                return handed_out() > before

            await until(got_a_batch_it_cannot_record, "the receiver took one more batch")
            await asyncio.sleep(0.3)
            first.send_signal(signal.SIGKILL)
            await first.wait()
    at_kill = await recorded_count()
    async with (
        minhu_bot("receiver", db_url, api, rasa, tmp_path / "r2", log),
        minhu_bot("worker", db_url, api, rasa, tmp_path / "w", log),
    ):
        await until(lambda: _at_least(engine, len(updates)), "every update done")
    print(
        f"\n{len(updates)} updates; first receiver killed with {at_kill} recorded; Telegram handed out "
        f"{handed_out()} (again: {handed_out() - len(updates)})"
    )
    assert handed_out() > len(updates)  # the batch the first receiver died with came again
    assert await recorded_count() == len(updates)
    assert repeated_effects(api, rasa) == 0


async def _more_than(count: Callable[[], Awaitable[int]], floor: int) -> bool:
    return await count() > floor
