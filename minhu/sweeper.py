"""The deadline sweeper: escalates overdue tickets and auto-closes unrated ones, once (`minhu sweep`) or for
as long as `minhu run` runs. Imports nothing of the edges, so a sweep does not load Telegram."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from app.loops import MAX_BACKOFF, run_forever
from tickets.service import TicketService

log = structlog.get_logger("minhu.sweeper")


async def sweep_once(service: TicketService) -> tuple[list[str], list[str]]:
    return await service.escalate_overdue(), await service.auto_close()


async def sweep_forever(
    service: TicketService,
    every: float,
    *,
    max_backoff: float = MAX_BACKOFF,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Sweep every `every` seconds for as long as the process runs; a failed sweep (the database away, a
    bug) does not stop it (app.loops.run_forever): until a restart nothing would escalate otherwise."""

    async def one_sweep() -> None:
        escalated, closed = await sweep_once(service)
        if escalated or closed:
            log.info("sweep", escalated=len(escalated), auto_closed=len(closed))

    await run_forever(one_sweep, every, name="sweep", max_backoff=max_backoff, sleep=sleep)
