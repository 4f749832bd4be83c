"""Fixtures: every database test runs on SQLite and on PostgreSQL, both built by the Alembic migrations.

PostgreSQL is at 127.0.0.1:5432 (override with MINHU_TEST_PG). Locally a missing server skips those
tests; with CI=true a missing server fails the run, because CI must prove both databases.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from alembic import command
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.fake_rasa import FakeRasa
from tickets import crypto
from tickets.actors import SYSTEM
from tickets.catalogue import Catalogue
from tickets.clock import ManualClock
from tickets.db import alembic_config, create_engine, session_factory, unit_of_work
from tickets.models import Base, Resident, Responder
from tickets.org import load_org, parse_org
from tickets.service import TicketService

PG_SERVER = os.environ.get("MINHU_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
FIXTURES = Path(__file__).parent / "fixtures"
SHANGHAI = ZoneInfo("Asia/Shanghai")
# Monday 23 November 2026, 09:00 in Wuhan: a normal working day.
MONDAY_9AM = datetime(2026, 11, 23, 9, 0, tzinfo=SHANGHAI)

# Phones are encrypted at rest (tickets.crypto); the app configures its key in app.wiring, the tests this
# fixed one: before anything (the template databases are migrated once per session), and before every test
# (a test may configure other keys).
TEST_DATA_KEY = crypto.DataKey(bytes(range(32)))
TEST_KEYRING = crypto.Keyring(TEST_DATA_KEY)
crypto.configure(TEST_KEYRING)


@pytest.fixture(autouse=True)
def data_keys() -> Iterator[crypto.Keyring]:
    crypto.configure(TEST_KEYRING)
    yield TEST_KEYRING
    crypto.configure(TEST_KEYRING)


def write_test_key_file(data_dir: Path) -> None:
    """The test key as a process started on `data_dir` reads it (the key file, mode 0600)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(data_dir / "minhu.keys", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(TEST_DATA_KEY.encoded() + "\n")


def _pg_reachable() -> str | None:
    async def probe() -> None:
        conn = await asyncpg.connect(PG_SERVER, timeout=5)
        await conn.close()

    try:
        asyncio.run(probe())
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return None


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, migrated to head, dropped afterwards."""
    problem = _pg_reachable()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(
                f"PostgreSQL is required in CI but unreachable at {PG_SERVER}: {problem}", pytrace=False
            )
        pytest.skip(f"PostgreSQL unreachable ({problem}); CI runs these")
    name = f"minhu_t_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_SERVER)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    base = PG_SERVER.rsplit("/", 1)[0]
    url = f"{base.replace('postgresql://', 'postgresql+asyncpg://')}/{name}"
    command.upgrade(alembic_config(url), "head")
    yield url
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "minhu.db"
    command.upgrade(alembic_config(f"sqlite+aiosqlite:///{path}"), "head")
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "minhu.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite+aiosqlite:///{path}"
    return str(request.getfixturevalue("pg_database"))


async def truncate(engine: AsyncEngine) -> None:
    """Empty the session's shared PostgreSQL database (SQLite tests get a fresh file instead)."""
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(db_url)
    if engine.dialect.name == "postgresql":
        await truncate(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(MONDAY_9AM)


@pytest.fixture
def catalogue() -> Catalogue:
    return Catalogue.load()


@pytest.fixture
async def service(engine: AsyncEngine, clock: ManualClock, catalogue: Catalogue) -> TicketService:
    return TicketService(session_factory(engine), clock=clock, catalogue=catalogue)


class Org:
    """The test org's responder ids by code, and helpers to make residents."""

    def __init__(self, service: TicketService, responders: dict[str, int]) -> None:
        self.service = service
        self.responders = responders

    # The system itself may read any ticket (history, escalation checks).
    service_actor = SYSTEM

    def __getitem__(self, code: str) -> int:
        return self.responders[code]

    async def resident(
        self, name: str = "r1", community: str | None = "anju", compound: str | None = None
    ) -> int:
        resident = await self.service.resident_for(f"test:{name}")
        if community:
            await self.service.remember_resident(resident.id, community=community, compound=compound)
        return resident.id


@pytest.fixture
async def org(service: TicketService, catalogue: Catalogue) -> Org:
    async with unit_of_work(service.sessions) as session:
        await load_org(session, parse_org(FIXTURES / "org.yml"), catalogue)
        responders = {r.code: r.id for r in await session.scalars(select(Responder))}
    return Org(service, responders)


async def count(service: TicketService, model: type[Base]) -> int:
    from sqlalchemy import func

    async with service.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def notifications(service: TicketService, number: str | None = None) -> list[tuple[str, str, int]]:
    """(kind, recipient_type, recipient_id) of the outbox rows, oldest first, optionally for one ticket."""
    from tickets.models import Notification, Ticket

    async with service.sessions() as session:
        query = select(Notification).order_by(Notification.id)
        if number:
            query = query.join(Ticket, Ticket.id == Notification.ticket_id).where(Ticket.number == number)
        return [(n.kind, n.recipient_type, n.recipient_id) for n in await session.scalars(query)]


async def actions(service: TicketService, number: str) -> list[tuple[str, str | None, str]]:
    """(action, from, to) of a ticket's events in order."""
    return [(e.action, e.from_status, e.to_status) for e in await service.history(number, SYSTEM)]


__all__ = ["MONDAY_9AM", "Org", "Resident", "actions", "count", "notifications"]


@pytest.fixture
async def rasa() -> AsyncIterator[FakeRasa]:
    """The tests' stand-in for Rasa's REST channel on a free port (tests/fake_rasa.py)."""
    fake = FakeRasa()
    await fake.start()
    yield fake
    await fake.stop()
