"""The deadline sweeper: escalates overdue tickets and auto-closes unrated ones, once (`minhu sweep`) or for
as long as `minhu run` runs. Imports nothing of the edges, so a sweep does not load Telegram."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from app.logs import where
from tickets.service import TicketService

log = structlog.get_logger("minhu.sweeper")

MAX_BACKOFF = 600.0  # seconds: a database away for long is tried again every ten minutes


async def sweep_once(service: TicketService) -> tuple[list[str], list[str]]:
    return await service.escalate_overdue(), await service.auto_close()


async def sweep_forever(
    service: TicketService,
    every: float,
    *,
    max_backoff: float = MAX_BACKOFF,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Sweep every `every` seconds. A failed sweep (the database away, a bug) is logged without personal data
    and the loop carries on, waiting twice as long after each failure in a row (at most max_backoff): until
    a restart nothing would escalate otherwise."""
    wait = every
    while True:
        try:
            escalated, closed = await sweep_once(service)
        except Exception as error:
            wait = min(wait * 2, max(max_backoff, every))
            log.error("sweep failed", error=type(error).__name__, at=where(error), retry_in=wait)
        else:
            wait = every
            if escalated or closed:
                log.info("sweep", escalated=len(escalated), auto_closed=len(closed))
        await sleep(wait)
