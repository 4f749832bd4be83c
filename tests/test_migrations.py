"""The Alembic migrations are the schema: they match the models, run both ways, and the app refuses a
database they have not brought up to date."""

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import PG_SERVER, TEST_KEYRING
from tickets.db import alembic_config, create_engine, ensure_migrated
from tickets.errors import DatabaseNotMigrated
from tickets.models import Base


async def test_models_and_migrations_agree(engine: AsyncEngine) -> None:
    def diff(conn: Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))

    async with engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_a_migrated_database_is_accepted(engine: AsyncEngine) -> None:
    await ensure_migrated(engine)


async def test_an_empty_database_is_refused_with_the_command_to_run(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    try:
        with pytest.raises(DatabaseNotMigrated, match="minhu db upgrade"):
            await ensure_migrated(engine)
    finally:
        await engine.dispose()


def test_downgrade_to_nothing_and_back(tmp_path: Path) -> None:
    config = alembic_config(f"sqlite+aiosqlite:///{tmp_path / 'roundtrip.db'}")
    command.upgrade(config, "head")
    command.downgrade(config, "base")
    command.upgrade(config, "head")


# ------------------------------------------------------------------ 0004: phones encrypted at rest

LEGACY_ROWS = [
    "INSERT INTO streets (id, code, name) VALUES (1, 's', '街道')",
    "INSERT INTO communities (id, code, name, street_id) VALUES (1, 'c', '社区', 1)",
    "INSERT INTO responders (id, code, name, role, street_id, community_id, categories, capacity, on_duty,"
    " phone, active) VALUES (1, 'v', '志愿者', 'party_volunteer', 1, 1, '[]', 5, true, '+8613800000001', true)",
    "INSERT INTO residents (id, channel_id, phone, created_at) VALUES (1, 'test:1', '+8613912345678', :now)",
    "INSERT INTO residents (id, channel_id, phone, created_at) VALUES (2, 'test:2', NULL, :now)",
    "INSERT INTO tickets (id, number, resident_id, category, text, street_id, community_id, contact_phone,"
    " urgency, channel, status, dispatch_mode, level, created_at, respond_by, resolve_by, first_respond_by,"
    " reopen_count, version) VALUES (1, 'MH-20261123-0001', 1, 'eldercare', '助餐', 1, 1, '+8613912345678',"
    " 'normal', 'test', 'created', 'grab', 0, :now, :now, :now, :now, 0, 1)",
]
PHONES = (
    "SELECT phone FROM responders UNION ALL SELECT phone FROM residents WHERE phone IS NOT NULL"
    " UNION ALL SELECT contact_phone FROM tickets"
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own (the migrations are run on it step by step)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'legacy.db'}"
        return
    request.getfixturevalue("pg_database")  # skips (or fails in CI) without a server, like every PG test
    name = f"minhu_m_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    yield f"{PG_SERVER.rsplit('/', 1)[0].replace('postgresql://', 'postgresql+asyncpg://')}/{name}"
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _pg_admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_SERVER)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _run_sql(url: str, statements: list[str]) -> list[str]:
    async def run() -> list[str]:
        engine = create_engine(url)
        try:
            async with engine.begin() as conn:
                for sql in statements[:-1]:
                    await conn.execute(text(sql), {"now": datetime(2026, 11, 23, 1, tzinfo=UTC)})
                return [row[0] for row in await conn.execute(text(statements[-1]))]
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_0004_encrypts_the_plain_phones_already_stored_and_0003_decrypts_them(empty_db_url: str) -> None:
    config = alembic_config(empty_db_url)
    command.upgrade(config, "0003")
    assert sorted(_run_sql(empty_db_url, [*LEGACY_ROWS, PHONES])) == sorted(
        ["+8613800000001", "+8613912345678", "+8613912345678"]
    )

    command.upgrade(config, "head")
    stored = _run_sql(empty_db_url, [PHONES])
    assert len(stored) == 3
    assert all(v.startswith(TEST_KEYRING.current_id + ":") and "1391234" not in v for v in stored)
    assert sorted(TEST_KEYRING.decrypt(v) for v in stored) == [
        "+8613800000001",
        "+8613912345678",
        "+8613912345678",
    ]
    command.upgrade(config, "head")  # nothing left to do

    command.downgrade(config, "0003")
    assert sorted(_run_sql(empty_db_url, [PHONES])) == [
        "+8613800000001",
        "+8613912345678",
        "+8613912345678",
    ]


# ------------------------------------------------------------------ 0011: roll-up deltas

ROLLUP_TOTALS = (
    "SELECT SUM(total) FROM ticket_rollup UNION ALL SELECT SUM(total) FROM ticket_rollup_community"
)


def test_0011_downgrade_folds_the_deltas_and_upgrade_appends_them_again(empty_db_url: str) -> None:
    config = alembic_config(empty_db_url)
    command.upgrade(config, "0011")
    # A ticket stored at 0011 is a delta, not yet in the roll-up tables.
    assert _run_sql(empty_db_url, [*LEGACY_ROWS, "SELECT SUM(total) FROM ticket_rollup_delta"]) == [1]
    command.downgrade(config, "0010")  # folded on the way down: 0008's triggers count in place again
    assert _run_sql(empty_db_url, [ROLLUP_TOTALS]) == [1, 1]
    assert _run_sql(empty_db_url, ["DELETE FROM tickets", ROLLUP_TOTALS]) == [0, 0]
    command.upgrade(config, "head")
    assert _run_sql(empty_db_url, ["SELECT COUNT(*) FROM ticket_rollup_delta"]) == [0]
