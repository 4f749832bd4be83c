"""The PostgreSQL pool pings a connection only when it sat idle (tickets.db._ping_when_idle): a connection
the server dropped meanwhile is replaced instead of failing the next transaction."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection

from tests.conftest import PG_SERVER
from tickets.db import create_engine


@pytest.mark.postgres
async def test_a_connection_dropped_while_idle_is_replaced(pg_database: str) -> None:
    engine = create_engine(pg_database, pool_size=1, max_overflow=0, ping_after_idle=0.0)
    try:
        async with engine.connect() as conn:
            first = await conn.scalar(text("SELECT pg_backend_pid()"))
        admin = await asyncpg.connect(PG_SERVER)
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", first)
        finally:
            await admin.close()
        async with engine.connect() as conn:  # pinged, found dead, reconnected: no error
            second = await conn.scalar(text("SELECT pg_backend_pid()"))
        assert second != first
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_a_recently_used_connection_is_not_pinged(
    pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings: list[object] = []
    original = AsyncAdapt_asyncpg_connection.ping

    def counting(self: AsyncAdapt_asyncpg_connection) -> None:
        pings.append(self)
        original(self)

    monkeypatch.setattr(AsyncAdapt_asyncpg_connection, "ping", counting)
    engine = create_engine(pg_database, pool_size=1, max_overflow=0, ping_after_idle=3600.0)
    try:
        for _ in range(5):
            async with engine.connect() as conn:
                assert await conn.scalar(text("SELECT 1")) == 1
    finally:
        await engine.dispose()
    assert len(pings) == 1  # the new connection's first checkout only
