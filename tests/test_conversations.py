"""minhu.conversations' statements on PostgreSQL, where Rasa's `events` table lives in the schema `rasa` beside
the app's tables (the SQLite store is exercised with the real Rasa server in tests/e2e/test_forget.py)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from app.settings import Settings
from minhu import conversations
from minhu.stack import prepare_tracker_store
from tickets.db import create_engine

pytestmark = pytest.mark.postgres

# The columns of Rasa 3.6's SQLTrackerStore table that these statements read.
EVENTS = """CREATE TABLE IF NOT EXISTS rasa.events (
    id SERIAL PRIMARY KEY, sender_id VARCHAR(255) NOT NULL, type_name VARCHAR(255) NOT NULL,
    timestamp FLOAT, intent_name VARCHAR(255), action_name VARCHAR(255), data TEXT)"""


async def senders(url: str) -> list[str]:
    engine = create_engine(url)
    async with engine.begin() as conn:
        rows = await conn.execute(text("SELECT DISTINCT sender_id FROM rasa.events ORDER BY sender_id"))
        found = list(rows.scalars())
    await engine.dispose()
    return found


async def test_old_and_forgotten_conversations_are_deleted_whole(pg_database: str, tmp_path: object) -> None:
    settings = Settings(MINHU_DATA_DIR=tmp_path, DATABASE_URL=pg_database)
    await prepare_tracker_store(settings)
    engine = create_engine(pg_database)
    async with engine.begin() as conn:  # the session's database: another test's Rasa may have made it
        await conn.execute(text("DROP TABLE IF EXISTS rasa.events"))
    assert await conversations.prune(settings, datetime.now(UTC)) == 0  # Rasa has not made its table yet
    now = time.time()
    async with engine.begin() as conn:
        await conn.execute(text(EVENTS))
        for sender, days_ago in [("web:old", 40), ("web:old", 31), ("web:busy", 40), ("web:busy", 1)]:
            await conn.execute(
                text("INSERT INTO rasa.events (sender_id, type_name, timestamp) VALUES (:s, 'user', :t)"),
                {"s": sender, "t": now - days_ago * 86400},
            )
        await conn.execute(
            text(
                "INSERT INTO rasa.events (sender_id, type_name, timestamp) VALUES ('telegram:7', 'user', :t)"
            ),
            {"t": now},
        )
    await engine.dispose()

    assert await conversations.prune(settings, datetime.now(UTC)) == 1
    assert await senders(pg_database) == ["telegram:7", "web:busy"]  # a recent turn keeps all of it
    assert await conversations.forget(settings, "telegram:7") is True
    assert await conversations.forget(settings, "telegram:7") is False
    assert await senders(pg_database) == ["web:busy"]
    engine = create_engine(pg_database)
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE rasa.events"))
    await engine.dispose()
