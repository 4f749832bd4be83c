"""The deadline sweeper: escalates overdue tickets and auto-closes unrated ones, once (`minhu sweep`) or for
as long as `minhu run` runs. Imports nothing of the edges, so a sweep does not load Telegram."""

from __future__ import annotations

import asyncio

import structlog

from tickets.service import TicketService

log = structlog.get_logger("minhu.sweeper")


async def sweep_once(service: TicketService) -> tuple[list[str], list[str]]:
    return await service.escalate_overdue(), await service.auto_close()


async def sweep_forever(service: TicketService, every: float) -> None:
    while True:
        escalated, closed = await sweep_once(service)
        if escalated or closed:
            log.info("sweep", escalated=len(escalated), auto_closed=len(closed))
        await asyncio.sleep(every)
