"""Rasa's conversation lock for several Rasa replicas on one Redis (`lock_store: type:
nlu.lock_store.LeasedRedisLockStore` in the endpoints file; the same settings as Rasa's `redis` type).

Rasa Open Source's `RedisLockStore` keeps a conversation's queue of tickets as one JSON value that each
replica reads, changes and writes back (not atomic: RasaHQ/rasa#9213), and a ticket stays valid for
`TICKET_LOCK_LIFETIME` (60 s) whatever becomes of its holder. A replica killed in the middle of a turn left
its ticket behind, and the conversation's next try, which the relay sends to another replica, waited the
whole minute for it: as long as the relay and the resident wait for an answer, so the resident said it again
and both tries were taken (tests/faults found it).

Here the lock is redis-py's (`SET NX PX` with a random token, released only by its holder with a Lua
compare-and-delete: atomic), and its lease is short (`LEASE_S`, 15 s) and renewed by the holder while its turn
runs: a living replica keeps it however long the turn takes, a dead one's is gone within `LEASE_S`. Who
waits asks again every `POLL_S`, for at most Rasa's lock lifetime, then fails the request (a 500: the relay
keeps the message and sends it again). There is no queue: the relays send one sender's messages one at a
time, in order (app/relay.py), so at most the one in-flight try of a sender waits. Redis away fails the
request as Rasa's own lock store does, and without blocking Rasa's event loop (redis-py's asyncio client).

Runs in the Rasa venv (imports nothing from the app).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from rasa.core.lock import TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, LockError, LockStore
from rasa.utils.endpoints import EndpointConfig
from redis import asyncio as aioredis
from redis.exceptions import LockError as RedisLockError
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

LEASE_S = 15.0  # how long a dead replica's hold can outlive it (`lease_s` in the endpoints file)
POLL_S = 0.05  # a waiting try asks again this often (a turn takes tens of milliseconds)
KEY_PREFIX = "lease:"  # not Rasa's "lock:": its JSON queues have no expiry and must not be taken for a hold


class LeasedRedisLockStore(LockStore):
    """An atomic lock per conversation on Redis, with a lease its holder renews."""

    def __init__(self, endpoint_config: EndpointConfig) -> None:
        options: dict[str, Any] = dict(endpoint_config.kwargs or {})
        self.lease_s = float(options.get("lease_s", LEASE_S))
        prefix = str(options.get("key_prefix") or "")
        self.key_prefix = f"{prefix}:{KEY_PREFIX}" if prefix.isalnum() else KEY_PREFIX
        timeout = float(options.get("socket_timeout", 10))  # connecting and each command
        self.red = aioredis.Redis(
            host=endpoint_config.url or "localhost",
            port=int(options.get("port", 6379)),
            db=int(options.get("db", 1)),
            username=options.get("username"),
            password=options.get("password"),
            ssl=bool(options.get("use_ssl", False)),
            ssl_certfile=options.get("ssl_certfile"),
            ssl_keyfile=options.get("ssl_keyfile"),
            ssl_ca_certs=options.get("ssl_ca_certs"),
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
        super().__init__()

    async def ping(self) -> None:
        """Raises when Redis does not answer (Rasa's /readyz, nlu/health.py)."""
        await self.red.ping()

    @contextlib.asynccontextmanager
    async def lock(
        self,
        conversation_id: str,
        lock_lifetime: float = LOCK_LIFETIME,
        wait_time_in_seconds: float = 1,
    ) -> AsyncIterator[TicketLock]:
        """Hold `conversation_id`'s lock, waiting for it at most `lock_lifetime` seconds (LockError then, or
        when Redis cannot be reached)."""
        held = self.red.lock(
            self.key_prefix + conversation_id,
            timeout=self.lease_s,
            sleep=POLL_S,
            blocking_timeout=lock_lifetime,
            thread_local=False,
        )
        try:
            acquired = await held.acquire()
        except RedisError as error:
            raise LockError(f"Could not reach the lock store: {error}") from error
        if not acquired:
            raise LockError(f"Could not acquire lock for conversation_id '{conversation_id}'.")
        renewing = asyncio.ensure_future(_renew(held, conversation_id, self.lease_s / 3))
        try:
            yield TicketLock(conversation_id)  # what Rasa's callers are given (none of them reads it)
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
            try:
                await held.release()
            except (RedisLockError, RedisError) as error:
                # The turn is done and saved; its lease ends by itself within LEASE_S.
                log.warning("Could not release the lock of conversation '%s': %s", conversation_id, error)


async def _renew(held: Any, conversation_id: str, every: float) -> None:
    """Keep the lease while the turn runs (renewed every third of it: two renewals may fail before it
    ends); a renewal that fails is tried again at the next one."""
    while True:
        await asyncio.sleep(every)
        try:
            await held.reacquire()
        except RedisLockError:  # the lease ran out (this process stood still longer than LEASE_S)
            log.warning("Lost the lock of conversation '%s' during its turn", conversation_id)
            return
        except RedisError as error:
            log.warning("Could not renew the lock of conversation '%s': %s", conversation_id, error)
