"""Rasa's conversation store (its SQL tracker store, table `events`, see minhu.stack.tracker_store_env) under
Minhu's privacy rules: a conversation is deleted `MINHU_KEEP_CHAT_DAYS` after its last message, and at once
when the resident asks to be forgotten (`minhu residents forget`).

Rasa owns the table and creates it on its first start; before that there is nothing to delete. A conversation
is deleted whole (all its events): deleting only its old turns would leave Rasa a tracker it cannot replay.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from app.settings import Settings
from minhu.stack import TRACKER_SCHEMA, uses_postgresql


@asynccontextmanager
async def _store(settings: Settings) -> AsyncIterator[tuple[AsyncConnection, str] | None]:
    """A transaction on the store and the events table's qualified name; None while there is no store yet."""
    if uses_postgresql(settings):
        url, table = settings.db_url, f'"{TRACKER_SCHEMA}".events'
    else:
        path = settings.data_dir / "rasa-tracker.db"
        if not path.exists():
            yield None
            return
        url, table = f"sqlite+aiosqlite:///{path}", "events"
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            exists = await conn.run_sync(
                lambda sync: sync.dialect.has_table(
                    sync, "events", schema=TRACKER_SCHEMA if uses_postgresql(settings) else None
                )
            )
            yield (conn, table) if exists else None
    finally:
        await engine.dispose()


async def prune(settings: Settings, now: datetime) -> int:
    """Delete the conversations whose last message is older than the retention; returns how many."""
    cutoff = now.timestamp() - settings.keep_chat_days * 86400
    async with _store(settings) as store:
        if store is None:
            return 0
        conn, table = store
        old = f"SELECT sender_id FROM {table} GROUP BY sender_id HAVING MAX(timestamp) < :cutoff"
        senders = (await conn.execute(text(old), {"cutoff": cutoff})).scalars().all()
        for sender in senders:
            await conn.execute(text(f"DELETE FROM {table} WHERE sender_id = :sender"), {"sender": sender})
        return len(senders)


async def forget(settings: Settings, sender_id: str) -> bool:
    """Delete one resident's conversation (their channel id is Rasa's sender id); True if there was one."""
    async with _store(settings) as store:
        if store is None:
            return False
        conn, table = store
        deleted = await conn.execute(
            text(f"DELETE FROM {table} WHERE sender_id = :sender"), {"sender": sender_id}
        )
        return bool(deleted.rowcount)
