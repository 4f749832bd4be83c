"""The sweepers, once (`minhu sweep`) or for as long as `minhu run` runs: the deadline sweeper escalates overdue
tickets and auto-closes unrated ones; the privacy sweeper erases contact details and conversations kept past
their time (tickets.retention, minhu.conversations). Imports nothing of the edges, so a sweep does not load
Telegram."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from app.health import note_sweep
from app.loops import MAX_BACKOFF, run_forever
from app.settings import Settings
from minhu import conversations
from tickets.service import TicketService

log = structlog.get_logger("minhu.sweeper")


async def sweep_once(service: TicketService) -> tuple[list[str], list[str]]:
    """Escalations and auto-closes (the tickets' numbers); the figures' roll-up deltas folded first."""
    await service.fold_rollup()
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
        note_sweep()  # the process's /metrics (minhu_last_sweep_timestamp_seconds)
        if escalated or closed:
            log.info("sweep", escalated=len(escalated), auto_closed=len(closed))

    await run_forever(one_sweep, every, name="sweep", max_backoff=max_backoff, sleep=sleep)


async def forget_expired_once(service: TicketService, settings: Settings) -> tuple[list[str], int]:
    """Erase the contact details of tickets ended long enough ago, and delete old conversations: the
    tickets' numbers and how many conversations."""
    return await service.erase_expired(), await conversations.prune(settings, service.clock.now())


async def forget_expired_forever(
    service: TicketService,
    settings: Settings,
    every: float = 3600.0,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """The privacy sweep every `every` seconds (hourly: retention is counted in days) for as long as the
    process runs; a failed round does not stop it."""

    async def one_round() -> None:
        erased, deleted = await forget_expired_once(service, settings)
        if erased or deleted:
            log.info("privacy sweep", contacts_erased=len(erased), conversations_deleted=deleted)

    await run_forever(one_round, every, name="privacy sweep", sleep=sleep)
