"""The Alembic migrations are the schema: they match the models, run both ways, and the app refuses a
database they have not brought up to date."""

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

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
