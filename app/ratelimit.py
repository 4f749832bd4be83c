"""How fast a channel may be written to, across every process that writes to it: Telegram allows a bot
about 30 messages a second in all, not per deliverer. A token bucket: `rate` a second, at most `burst` at
once. With Redis configured (MINHU_REDIS_URL) the bucket is one Redis key that every deliverer shares,
updated by one Lua script (atomic; Redis's own clock, so the processes' clocks do not matter). Without it
the bucket is the process's own (one deliverer: the single-machine `make run`). A caller is given a slot and
told how long to wait for it (the bucket may go below zero: callers queue in the order Redis saw them), so
nobody polls. If Redis cannot be reached the process falls back to its own bucket at the full rate and says
so in the log: deliveries go on, and Telegram's 429 (honoured by bot/delivery.py) remains the backstop."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

import structlog

log = structlog.get_logger("app.ratelimit")

TELEGRAM_RATE = 25.0  # messages a second for all deliverers together: under Telegram's ≈30, with margin
TELEGRAM_BURST = 5.0

# KEYS[1] the bucket; ARGV rate, burst. Returns the seconds the caller waits for its slot (as a string:
# Lua numbers become integers on their way out of Redis).
_TAKE = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate) - 1
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], 3600)
if tokens >= 0 then return '0' end
return tostring(-tokens / rate)
"""


class RateLimit(Protocol):
    async def acquire(self) -> None:
        """Wait until this caller may send one message."""


class LocalBucket:
    """This process's own token bucket (same rule as the shared one)."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.at = burst, time.monotonic()

    def take(self) -> float:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate) - 1
        self.at = now
        return max(0.0, -self.tokens / self.rate)

    async def acquire(self) -> None:
        wait = self.take()
        if wait > 0:
            await asyncio.sleep(wait)


class SharedBucket:
    """One bucket in Redis for every process that sends as this bot (`key`)."""

    def __init__(self, redis_url: str, key: str, rate: float, burst: float) -> None:
        from redis import asyncio as aioredis  # only deployments with Redis load it

        self.redis: Any = aioredis.from_url(  # type: ignore[no-untyped-call]
            redis_url, socket_timeout=2, socket_connect_timeout=2
        )
        self.script = self.redis.register_script(_TAKE)
        self.key, self.rate, self.burst = key, rate, burst
        self.fallback = LocalBucket(rate, burst)
        self.failing = False

    async def acquire(self) -> None:
        try:
            wait = float(await self.script(keys=[self.key], args=[self.rate, self.burst]))
            if self.failing:
                log.info("shared rate limit back", key=self.key)
            self.failing = False
        except Exception as error:  # Redis away: this process's own bucket, and say so once
            if not self.failing:
                log.warning(
                    "shared rate limit unreachable, limiting this process only", error=type(error).__name__
                )
            self.failing = True
            wait = self.fallback.take()
        if wait > 0:
            await asyncio.sleep(wait)

    async def close(self) -> None:
        await self.redis.aclose()


def telegram_limit(redis_url: str | None, token: str, rate: float = TELEGRAM_RATE) -> RateLimit:
    """The bucket of a bot: shared through Redis when configured, else this process's own. Keyed by the
    bot's id (the token's part before the colon: not secret), so two bots do not share a limit."""
    if not redis_url:
        return LocalBucket(rate, TELEGRAM_BURST)
    return SharedBucket(redis_url, f"minhu:rate:telegram:{token.split(':', 1)[0]}", rate, TELEGRAM_BURST)
