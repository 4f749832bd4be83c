"""tickets.db.reading: a session that only reads. On SQLite its transaction is a deferred BEGIN, so it does
not queue behind a writer's BEGIN IMMEDIATE (the web chat asks for the resident's consent on every request
while the action server writes tickets); writes still take the write lock at BEGIN."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text

from tickets.db import create_engine, reading, session_factory, unit_of_work


async def test_a_read_does_not_wait_for_a_writer_on_sqlite(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/reading.db")
    sessions = session_factory(engine)
    try:
        async with unit_of_work(sessions) as session:
            await session.execute(text("CREATE TABLE t (x INTEGER)"))
        async with unit_of_work(sessions) as writer:
            await writer.execute(text("INSERT INTO t VALUES (1)"))
            # The writer holds the write lock: the read answers at once, from the last commit.
            async with reading(sessions) as session:
                seen = await asyncio.wait_for(session.scalar(text("SELECT count(*) FROM t")), 5)
            assert seen == 0
        async with reading(sessions) as session:
            assert await session.scalar(text("SELECT count(*) FROM t")) == 1
    finally:
        await engine.dispose()
