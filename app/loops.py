"""The long-running loops of every process (the sweeper, the deliverers): one round at a time; a failed
round is logged without personal data and the loop carries on, waiting twice as long after each failure in
a row (a database that is away is not hammered), and back to its pace after a good round."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from app.logs import where

log = structlog.get_logger("app.loops")

MAX_BACKOFF = 600.0  # seconds: something away for long is tried again every ten minutes


async def run_forever(
    one_round: Callable[[], Awaitable[object]],
    every: float,
    *,
    name: str,
    max_backoff: float = MAX_BACKOFF,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Run `one_round` every `every` seconds until cancelled; see the module's docstring."""
    wait = every
    while True:
        try:
            await one_round()
        except Exception as error:
            wait = min(wait * 2, max(max_backoff, every))
            log.error(f"{name} failed", error=type(error).__name__, at=where(error), retry_in=wait)
        else:
            wait = every
        await sleep(wait)
