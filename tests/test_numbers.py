"""Ticket numbers with several processes creating at once (PostgreSQL): each process reserves blocks of
numbers (tickets.create.NumberBlocks) instead of locking the day's counter row for its whole create
transaction. Numbers stay unique and of the form MH-YYYYMMDD-NNNN; each process's are consecutive."""

import asyncio
import re

import pytest
from sqlalchemy import select

from tests.conftest import Org
from tickets.clock import ManualClock
from tickets.create import NUMBER_BLOCK
from tickets.db import create_engine, session_factory
from tickets.models import Ticket, TicketCounter
from tickets.service import NewTicket, TicketService

PROCESSES = 4
EACH = 60  # more than a block: every process reserves a second one


# the blocks are PostgreSQL's; SQLite numbers in the create transaction
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_processes_creating_at_once_get_unique_readable_numbers(
    service: TicketService, org: Org, clock: ManualClock, db_url: str
) -> None:
    resident = await org.resident()
    # One engine (own pool) and one service per "process": they meet only in the database.
    engines = [create_engine(db_url) for _ in range(PROCESSES)]
    try:
        services = [TicketService(session_factory(e), clock=clock) for e in engines]

        async def worker(s: TicketService) -> list[str]:
            return [
                (await s.create_ticket(NewTicket(resident, "environment", "垃圾没清运"))).number
                for _ in range(EACH)
            ]

        per_process = await asyncio.gather(*(worker(s) for s in services))
    finally:
        for e in engines:
            await e.dispose()

    everything = [n for numbers in per_process for n in numbers]
    assert len(set(everything)) == PROCESSES * EACH
    assert all(re.fullmatch(r"MH-20261123-\d{4}", n) for n in everything)
    for numbers in per_process:  # within a process, in the order it created them: consecutive per block
        values = [int(n.rsplit("-", 1)[1]) for n in numbers]
        assert values == sorted(values)
        assert values[NUMBER_BLOCK - 1] - values[0] == NUMBER_BLOCK - 1
    async with service.sessions() as session:
        stored = set((await session.scalars(select(Ticket.number))).all())
        last = await session.scalar(select(TicketCounter.last).where(TicketCounter.day == "20261123"))
    assert stored == set(everything)
    # Two blocks per process, nothing else: the gaps are the unused rest of each second block.
    assert last == PROCESSES * 2 * NUMBER_BLOCK
    assert max(int(n.rsplit("-", 1)[1]) for n in everything) <= last


# PostgreSQL reserves blocks (see above)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_sqlite_numbers_stay_consecutive_without_gaps(
    service: TicketService, org: Org, db_url: str
) -> None:
    resident = await org.resident()
    tickets = await asyncio.gather(
        *(service.create_ticket(NewTicket(resident, "environment", f"垃圾 {i}")) for i in range(5))
    )
    assert sorted(t.number for t in tickets) == [f"MH-20261123-{n:04d}" for n in range(1, 6)]
