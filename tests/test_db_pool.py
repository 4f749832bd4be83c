"""The PostgreSQL pool pings a connection only when it sat idle (tickets.db._ping_when_idle): a connection
the server dropped meanwhile is replaced instead of failing the next transaction, and a connection handed
back and out again within the idle threshold costs no round trip.

Seen from the server's side: pg_stat_activity's query_start for the pooled connection's backend moves
whenever the server receives a statement (a ping is BEGIN; ";"; ROLLBACK), and stays put otherwise."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tests.conftest import PG_SERVER
from tickets.db import create_engine

IDLE = 1.0  # the idle threshold under test (the app's is tickets.db.PING_AFTER_IDLE, 5 s)


@asynccontextmanager
async def pool_of_one(pg_database: str, ping_after_idle: float) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(pg_database, pool_size=1, max_overflow=0, ping_after_idle=ping_after_idle)
    try:
        yield engine
    finally:
        await engine.dispose()


@asynccontextmanager
async def server() -> AsyncIterator[asyncpg.Connection]:
    """A separate session on the server, to watch and to kill the pool's connection."""
    admin = await asyncpg.connect(PG_SERVER)
    try:
        yield admin
    finally:
        await admin.close()


async def backend_of(conn: AsyncConnection) -> int:
    """The server process behind a checked-out connection, asked of the driver (no round trip)."""
    raw = await conn.get_raw_connection()
    return int(raw.driver_connection.get_server_pid())


async def last_statement_at(admin: asyncpg.Connection, pid: int) -> datetime:
    started = await admin.fetchval("SELECT query_start FROM pg_stat_activity WHERE pid = $1", pid)
    assert started is not None, f"backend {pid} is gone or has run nothing"
    return started


@pytest.mark.postgres
async def test_a_connection_dropped_while_idle_is_replaced(pg_database: str) -> None:
    async with pool_of_one(pg_database, ping_after_idle=0.0) as engine, server() as admin:
        async with engine.connect() as conn:
            first = await conn.scalar(text("SELECT pg_backend_pid()"))
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", first)
        async with engine.connect() as conn:  # pinged, found dead, reconnected: no error
            second = await conn.scalar(text("SELECT pg_backend_pid()"))
        assert second != first


@pytest.mark.postgres
async def test_a_connection_is_pinged_only_after_sitting_idle(pg_database: str) -> None:
    async with pool_of_one(pg_database, ping_after_idle=IDLE) as engine, server() as admin:
        async with engine.connect() as conn:
            pid = await backend_of(conn)
            await conn.execute(text("SELECT 1"))

        # Handed back and out again at once: the server receives nothing before the first statement.
        before = await last_statement_at(admin, pid)
        async with engine.connect() as conn:
            assert await backend_of(conn) == pid
            assert await last_statement_at(admin, pid) == before, "pinged a connection used just now"

        # Back in the pool for longer than the threshold: the server is pinged at checkout.
        before = await last_statement_at(admin, pid)
        await asyncio.sleep(IDLE * 1.5)
        async with engine.connect() as conn:
            assert await backend_of(conn) == pid
            assert await last_statement_at(admin, pid) > before, "not pinged after sitting idle"
