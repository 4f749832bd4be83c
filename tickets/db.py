"""Engines, sessions and the migration check. One session per unit of work."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, event, exc
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from tickets.errors import DatabaseNotMigrated, DatabaseUnavailable

T = TypeVar("T")

# A pooled connection idle longer than this is pinged before use (see _ping_when_idle).
PING_AFTER_IDLE = 5.0


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)
        _sqlite_write_transactions(engine)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    ping_after = kwargs.pop("ping_after_idle", PING_AFTER_IDLE)
    engine = create_async_engine(url, **kwargs)
    if not kwargs.get("pool_pre_ping") and ping_after is not None:
        _ping_when_idle(engine, ping_after)
    return engine


def _ping_when_idle(engine: AsyncEngine, after: float) -> None:
    """Pessimistic disconnect handling, only where it can matter: a connection that sat in the pool for
    more than `after` seconds (a database restart, an idle timeout may have closed it) is pinged before
    it is handed out, and replaced if dead. `pool_pre_ping` pings on every checkout: a round trip per
    transaction, 0.3-0.5 ms of CPU measured, as much as a whole create transaction's share of a batch."""

    @event.listens_for(engine.sync_engine, "checkin")
    def on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        checked_in = record.info.pop("checked_in", None)
        if checked_in is not None and time.monotonic() - checked_in < after:
            return
        try:
            dbapi_connection.ping()
        except Exception as error:  # the pool invalidates it and connects anew (up to 3 tries)
            raise exc.DisconnectionError(f"stale pooled connection: {type(error).__name__}") from error


def server_away(error: exc.DBAPIError) -> bool:
    """The server turned the connection away or dropped it: PostgreSQL's SQLSTATE class 57 (shutting down,
    starting up: "the database system is shutting down", which asyncpg raises as a plain DBAPIError when a
    connection is made during a crash) or class 08 (connection exception)."""
    state = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    return isinstance(state, str) and state[:2] in ("57", "08")


async def retry_if_dropped(work: Callable[[], Awaitable[T]]) -> T:
    """`work` (one transaction, safe to run again when it did not commit), run once more when its connection
    turned out dead: after a database restart the pool still hands out connections that were checked in
    moments ago (only idle ones are pinged, _ping_when_idle); the failure invalidates the pool, so the second
    try connects anew. Still failing on a fresh connection: DatabaseUnavailable."""
    for attempt in (1, 2):
        try:
            return await work()
        except exc.DBAPIError as error:
            dropped = error.connection_invalidated or server_away(error)
            if attempt == 1 and dropped:
                continue
            if dropped or isinstance(error, exc.OperationalError | exc.InterfaceError):
                raise DatabaseUnavailable() from error
            raise
        except OSError as error:  # the driver's connect refused: the server is not there (yet)
            raise DatabaseUnavailable() from error
    raise AssertionError("unreachable")


def _sqlite_write_transactions(engine: AsyncEngine) -> None:
    """SQLite: WAL, foreign keys, and BEGIN IMMEDIATE so two writers queue instead of deadlocking
    (the pysqlite driver's own deferred BEGIN upgrades locks too late)."""

    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")


# Execution option of a session that only reads (`reading`).
READ_ONLY = "minhu_read_only"


@asynccontextmanager
async def reading(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session that only reads. On SQLite its transaction is a plain (deferred) BEGIN: it takes no write
    lock, so it does not queue behind the writers' BEGIN IMMEDIATE (WAL: it reads a snapshot). Never write
    in it: a deferred transaction that turns into a write can fail at once with SQLITE_BUSY. Elsewhere an
    ordinary session."""
    async with sessions() as session:
        await session.connection(execution_options={READ_ONLY: True})
        yield session


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def unit_of_work(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A transaction: commits when the block ends, rolls everything back on any error."""
    async with sessions() as session, session.begin():
        yield session


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The database's migration revision; None on a database no migration has touched."""

    def current(conn: Connection) -> str | None:
        return MigrationContext.configure(conn).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(current)


async def ensure_migrated(engine: AsyncEngine) -> None:
    """Refuse to run on a database the migrations have not brought up to date."""
    if await current_revision(engine) != head_revision():
        raise DatabaseNotMigrated()
