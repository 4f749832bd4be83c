"""The sweeper beside `minhu run` outlives failed sweeps: it logs each (no personal data), waits longer after
each failure in a row, and escalates on the first sweep that goes through."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from unittest.mock import ANY

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from minhu.sweeper import sweep_forever, sweep_once
from tests.conftest import Org
from tickets.clock import ManualClock
from tickets.models import Level, TicketRollupCommunity
from tickets.rollup_table import TICKET_ROLLUP_DELTA
from tickets.service import NewTicket, TicketService


class Stop(Exception):
    """Ends sweep_forever from its sleep once the test has seen the rounds it needs."""


async def test_the_sweeper_backs_off_while_the_database_fails_then_escalates(
    service: TicketService, org: Org, clock: ManualClock, engine: AsyncEngine
) -> None:
    resident = await org.resident(compound="安居苑")
    ticket = await service.create_ticket(NewTicket(resident, "facility_repair", "路灯坏了一个星期"))
    clock.set(ticket.respond_by + timedelta(minutes=1))

    # The driver's own error on the first statement of each of three sweeps, wrapped by SQLAlchemy as a
    # real one would be.
    outage = [engine.dialect.loaded_dbapi.OperationalError("the database went away") for _ in range(3)]

    def fail_while_down(*_: Any) -> None:
        if outage:
            raise outage.pop()

    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 4:
            raise Stop

    event.listen(engine.sync_engine, "before_cursor_execute", fail_while_down)
    try:
        with capture_logs() as logs, pytest.raises(Stop):
            await sweep_forever(service, every=60, max_backoff=300, sleep=sleep)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", fail_while_down)

    assert waits == [120, 240, 300, 60]  # doubled per failure in a row, capped; back to normal after
    failed = {"event": "sweep failed", "log_level": "error", "error": "OperationalError", "at": ANY}
    assert logs == [
        {**failed, "retry_in": 120},
        {**failed, "retry_in": 240},
        {**failed, "retry_in": 300},
        {"event": "sweep", "log_level": "info", "escalated": 1, "auto_closed": 0},
    ]
    assert all(re.fullmatch(r"\w+\.py:\d+", entry["at"]) for entry in logs[:3])
    escalated = await service.ticket(ticket.number, org.service_actor)
    assert escalated.level == Level.COMMUNITY and escalated.assignee_id == org["staff-a"]


async def test_a_sweep_folds_the_figures_deltas(service: TicketService, org: Org) -> None:
    resident = await org.resident(compound="安居苑")
    await service.create_ticket(NewTicket(resident, "facility_repair", "路灯坏了一个星期"))
    async with service.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(TICKET_ROLLUP_DELTA)) == 1
    await sweep_once(service)
    async with service.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(TICKET_ROLLUP_DELTA)) == 0
        assert await session.scalar(select(func.sum(TicketRollupCommunity.total))) == 1
