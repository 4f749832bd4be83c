"""Run in the Rasa venv by tests/e2e/test_lock_store.py: nlu/lock_store.LeasedRedisLockStore, the Rasa
conversation lock the replicas share, against a real redis-server (MINHU_CHECK_REDIS_PORT) with a short lease
(LEASE_S below). Two stores stand for two Rasa replicas. Prints one line per check; exits non-zero on failure.

`python check_lock_store.py hold KEY_SUFFIX` takes a conversation's lock, says "held" and waits to be
killed: a replica dying in the middle of a turn."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from rasa.core.lock_store import LockError, LockStore
from rasa.utils.endpoints import EndpointConfig

from nlu.lock_store import LeasedRedisLockStore

LEASE_S = 1.0


def check(name: str, ok: bool, detail: object = "") -> None:
    print(f"{name}: {'ok' if ok else 'FAILED'} {detail}", flush=True)
    if not ok:
        raise SystemExit(1)


def store(port: int | None = None) -> LockStore:
    port = port or int(os.environ["MINHU_CHECK_REDIS_PORT"])
    config = EndpointConfig(
        url="127.0.0.1",
        type="nlu.lock_store.LeasedRedisLockStore",
        port=port,
        db=1,
        key_prefix="minhucheck",
        lease_s=LEASE_S,
        socket_timeout=2,
    )
    return LockStore.create(config)


async def hold(conversation: str) -> None:
    async with store().lock(conversation):
        print("held", flush=True)
        await asyncio.sleep(3600)


async def one_at_a_time() -> None:
    """Two replicas, 40 turns of one conversation at once: never two inside."""
    replicas = [store(), store()]
    inside, most, done = 0, 0, 0

    async def turn(i: int) -> None:
        nonlocal inside, most, done
        async with replicas[i % 2].lock("web:one-at-a-time"):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.005)
            inside -= 1
            done += 1

    await asyncio.gather(*(turn(i) for i in range(40)))
    check("two replicas never hold one conversation at once", most == 1 and done == 40, (most, done))


async def a_long_turn_keeps_it() -> None:
    """A turn three leases long keeps the conversation: its holder renews the lease."""
    first, second = store(), store()
    order: list[str] = []

    async def long_turn() -> None:
        async with first.lock("web:long-turn"):
            order.append("long begins")
            await asyncio.sleep(3 * LEASE_S)
            order.append("long ends")

    async def next_turn() -> None:
        await asyncio.sleep(0.2)
        async with second.lock("web:long-turn"):
            order.append("next")

    await asyncio.gather(long_turn(), next_turn())
    check("a turn longer than the lease keeps the lock", order == ["long begins", "long ends", "next"], order)


async def a_dead_holder_lets_go() -> None:
    """A replica killed while it holds a conversation: another takes it once the lease has run out, not
    after Rasa's 60-second lifetime."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "hold", "web:dead-holder", stdout=asyncio.subprocess.PIPE
    )
    assert child.stdout is not None
    line = await child.stdout.readline()
    check("a replica holds the conversation", line.strip() == b"held", line)
    child.kill()
    await child.wait()
    killed = time.monotonic()
    async with store().lock("web:dead-holder"):
        waited = time.monotonic() - killed
    check("the dead replica's hold ends with its lease", waited <= LEASE_S + 0.5, f"{waited:.2f} s")


async def waits_at_most_the_lifetime() -> None:
    first, second = store(), store()
    async with first.lock("web:busy"):
        started = time.monotonic()
        try:
            async with second.lock("web:busy", lock_lifetime=0.5):
                taken = True
        except LockError:
            taken = False
        waited = time.monotonic() - started
    check("a try that waits longer than the lifetime fails", not taken and waited < 2, f"{waited:.2f} s")


async def redis_away() -> None:
    """Redis not there: a LockError at once (Rasa answers 500 and the relay keeps the message)."""
    away = store(port=9)
    try:
        await away.ping()  # type: ignore[attr-defined]
        pinged = True
    except Exception:
        pinged = False
    check("its readiness check fails without Redis", not pinged)
    started = time.monotonic()
    try:
        async with away.lock("web:no-redis"):
            failed = False
    except LockError:
        failed = True
    waited = time.monotonic() - started
    check("without Redis the turn fails at once", failed and waited < 3, f"{waited:.2f} s")


async def main() -> None:
    built = store()
    check("the endpoints' type builds the leased lock", isinstance(built, LeasedRedisLockStore))
    await built.ping()  # type: ignore[attr-defined]
    await one_at_a_time()
    await a_long_turn_keeps_it()
    await a_dead_holder_lets_go()
    await waits_at_most_the_lifetime()
    await redis_away()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    if sys.argv[1:2] == ["hold"]:
        asyncio.run(hold(sys.argv[2]))
    else:
        asyncio.run(main())
