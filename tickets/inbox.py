"""The Telegram inbox: updates recorded by one receiver, handled by several workers (docs/deploy.md, Telegram).

- `record`: the receiver's insert, keyed by update_id (a repeat from Telegram is dropped by the key), committed
  before Telegram is answered.
- `claim_next`: a worker takes the oldest pending update of a chat whose older updates are all done, locked
  `FOR UPDATE SKIP LOCKED` on a connection held until the update is done. Two workers never hold one chat's
  updates at once, a chat's updates go in update_id order, and a worker that dies (kill -9) lets go of its
  update the moment PostgreSQL sees the connection close: no lease, no clock.
- `mark_handled`, `recorded_call` / `record_call`, `load_state` / `save_state`: what makes handling an update
  again after a worker died give the same result (see bot/worker.py).
- `leader` and `sender_lock`: PostgreSQL advisory locks (one active receiver; one relay of a sender's stored
  messages at a time across processes). On SQLite (one process) they hold nothing.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from tickets.clock import Clock
from tickets.db import session_factory, unit_of_work
from tickets.inbox_tables import ChatState, InboxCall, InboxHandled, InboxUpdate
from tickets.models import InboundMessage

DONE_KEPT = timedelta(days=1)  # done updates kept this long (Telegram re-sends within about a day)
MAX_ATTEMPTS = 5  # an update whose handling failed this often is given up (logged), not retried forever


@dataclass(frozen=True)
class Received:
    update_id: int
    chat_id: int
    payload: str  # the update's JSON


@functools.cache
def _insert_ignoring_repeats(dialect: str) -> Any:
    insert_ = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert_(InboxUpdate)
        .on_conflict_do_nothing(index_elements=["update_id"])
        .returning(InboxUpdate.update_id)
    )


async def record(
    sessions: async_sessionmaker[AsyncSession], updates: Sequence[Received], now: datetime
) -> int:
    """The receiver's one transaction for a batch; returns how many were new (repeats are dropped)."""
    if not updates:
        return 0
    async with unit_of_work(sessions) as session:
        statement = _insert_ignoring_repeats(session.get_bind().dialect.name)
        result = await session.execute(
            statement,
            [
                {"update_id": u.update_id, "chat_id": u.chat_id, "payload": u.payload, "received_at": now}
                for u in updates
            ],
        )
        return len(result.all())


@dataclass
class Claim:
    """A pending update held by this worker (its row locked on `connection` until `done` or `release`)."""

    update_id: int
    chat_id: int
    payload: str
    attempts: int
    handled: InboxHandled | None  # set when a worker before this one committed the handlers' effects
    connection: AsyncConnection

    async def done(self, now: datetime) -> None:
        await self.connection.execute(
            update(InboxUpdate).where(InboxUpdate.update_id == self.update_id).values(done_at=now)
        )
        await self.connection.commit()

    async def failed(self) -> None:
        """Handling failed: counted, and left for another try (given up at MAX_ATTEMPTS)."""
        await self.connection.execute(
            update(InboxUpdate)
            .where(InboxUpdate.update_id == self.update_id)
            .values(attempts=InboxUpdate.attempts + 1)
        )
        await self.connection.commit()


def _claim_query() -> Any:
    older = aliased(InboxUpdate)
    return (
        select(InboxUpdate.update_id, InboxUpdate.chat_id, InboxUpdate.payload, InboxUpdate.attempts)
        .where(
            InboxUpdate.done_at.is_(None),
            ~exists().where(
                older.chat_id == InboxUpdate.chat_id,
                older.done_at.is_(None),
                older.update_id < InboxUpdate.update_id,
            ),
        )
        .order_by(InboxUpdate.update_id)
        .limit(1)
        .with_for_update(skip_locked=True, of=InboxUpdate)
    )


@asynccontextmanager
async def claim_next(engine: AsyncEngine) -> AsyncIterator[Claim | None]:
    """The next update this worker may handle (None: nothing free now). Leaving the block without `done`
    (an error, a cancellation) rolls back: the update is pending again."""
    async with engine.connect() as connection:
        await connection.begin()
        try:
            row = (await connection.execute(_claim_query())).first()
            if row is None:
                await connection.rollback()
                yield None
                return
            handled = (
                await connection.execute(select(InboxHandled).where(InboxHandled.update_id == row.update_id))
            ).first()
            marker = (
                InboxHandled(update_id=row.update_id, senders=handled.senders, at=handled.at)
                if handled
                else None
            )
            yield Claim(row.update_id, row.chat_id, row.payload, row.attempts, marker, connection)
        finally:
            if connection.in_transaction():
                await connection.rollback()


async def mark_handled(session: AsyncSession, update_id: int, senders: Sequence[str], now: datetime) -> None:
    """In the handlers' transaction: their effects are in; `senders` still have a stored message to relay."""
    session.add(InboxHandled(update_id=update_id, senders=" ".join(senders), at=now))


async def give_up(sessions: async_sessionmaker[AsyncSession], update_id: int, now: datetime) -> None:
    async with unit_of_work(sessions) as session:
        await session.execute(
            update(InboxUpdate).where(InboxUpdate.update_id == update_id).values(done_at=now)
        )


async def recorded_call(
    sessions: async_sessionmaker[AsyncSession], update_id: int, seq: int
) -> InboxCall | None:
    async with sessions() as session:
        return await session.get(InboxCall, (update_id, seq))


async def record_call(
    sessions: async_sessionmaker[AsyncSession],
    update_id: int,
    seq: int,
    method: str,
    status: int,
    response: str,
) -> None:
    """A call's answer kept (status 0: the call is about to be made, its answer not known yet)."""
    async with unit_of_work(sessions) as session:
        await session.merge(
            InboxCall(update_id=update_id, seq=seq, method=method, status=status, response=response)
        )


async def forget_call(sessions: async_sessionmaker[AsyncSession], update_id: int, seq: int) -> None:
    async with unit_of_work(sessions) as session:
        await session.execute(delete(InboxCall).where(InboxCall.update_id == update_id, InboxCall.seq == seq))


async def load_state(session: AsyncSession, user_id: int) -> dict[str, Any]:
    row = await session.get(ChatState, user_id)
    return dict(row.state) if row is not None else {}


async def save_state(session: AsyncSession, user_id: int, state: dict[str, Any], now: datetime) -> None:
    """The user's state after an update (an empty one is no row)."""
    row = await session.get(ChatState, user_id)
    if not state:
        if row is not None:
            await session.delete(row)
        return
    if row is None:
        session.add(ChatState(user_id=user_id, state=state, updated_at=now))
    else:
        row.state, row.updated_at = state, now


async def pending(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(InboxUpdate).where(InboxUpdate.done_at.is_(None))
        )
    return int(count or 0)


async def prune(sessions: async_sessionmaker[AsyncSession], now: datetime) -> None:
    """Done updates (and their calls and markers) past DONE_KEPT."""
    before = now - DONE_KEPT
    gone = select(InboxUpdate.update_id).where(InboxUpdate.done_at < before).scalar_subquery()
    async with unit_of_work(sessions) as session:
        await session.execute(delete(InboxCall).where(InboxCall.update_id.in_(gone)))
        await session.execute(delete(InboxHandled).where(InboxHandled.update_id.in_(gone)))
        await session.execute(delete(InboxUpdate).where(InboxUpdate.done_at < before))
        # A relayed answer's journal (key: -message id) once its message is answered and gone.
        waiting = select(InboundMessage.id).where(InboundMessage.id == -InboxCall.update_id)
        await session.execute(delete(InboxCall).where(InboxCall.update_id < 0, ~waiting.exists()))


# ---------------------------------------------------------------------- advisory locks (PostgreSQL)


@asynccontextmanager
async def leader(engine: AsyncEngine, name: str, *, every: float = 1.0) -> AsyncIterator[None]:
    """Held while this process is the one active `name` (e.g. the Telegram receiver): waits, trying every
    `every` seconds, while another holds it. A process that dies lets go with its connection."""
    if engine.dialect.name != "postgresql":
        yield
        return
    async with engine.connect() as connection:
        while not await connection.scalar(select(func.pg_try_advisory_lock(func.hashtextextended(name, 0)))):
            await connection.rollback()
            await asyncio.sleep(every)
        await connection.commit()
        try:
            yield
        finally:
            await connection.scalar(select(func.pg_advisory_unlock(func.hashtextextended(name, 0))))
            await connection.commit()


@asynccontextmanager
async def sender_lock(engine: AsyncEngine, sender: str) -> AsyncIterator[None]:
    """One relay of this sender's stored messages at a time across processes (waits for the other)."""
    if engine.dialect.name != "postgresql":
        yield
        return
    key = func.hashtextextended(f"relay:{sender}", 0)
    async with engine.connect() as connection:
        await connection.scalar(select(func.pg_advisory_lock(key)))
        await connection.commit()
        try:
            yield
        finally:
            await connection.scalar(select(func.pg_advisory_unlock(key)))
            await connection.commit()


# ---------------------------------------------------------------------- handling one update (bot/worker.py)


@dataclass
class Handling:
    """The update a task is handling: the one transaction its handlers share (`sessions`), and where it is
    in the journal of its Bot API calls."""

    update_id: int
    sessions: async_sessionmaker[AsyncSession] | None  # None: journal only (the engine's own sessions)
    seq: int = 0
    replaying: bool = True
    journaling: bool = True
    to_relay: list[tuple[str, int]] = field(default_factory=list)  # (sender, stored message id)


_HANDLING: ContextVar[Handling | None] = ContextVar("minhu_handling", default=None)


def handling_now() -> Handling | None:
    return _HANDLING.get()


class ScopedSessions(async_sessionmaker[AsyncSession]):
    """A service's sessions in a worker: the handled update's transaction while one is handled (each unit of
    work a savepoint in it), the engine's own otherwise."""

    def __call__(self, **local_kw: Any) -> AsyncSession:
        handling = _HANDLING.get()
        if handling is not None and handling.sessions is not None:
            return handling.sessions(**local_kw)
        return super().__call__(**local_kw)


def scoped_sessions(engine: AsyncEngine) -> ScopedSessions:
    return ScopedSessions(engine, expire_on_commit=False)


class Inbox:
    """The inbox on one engine, for the bot's receiver and workers (which import no SQLAlchemy)."""

    def __init__(self, engine: AsyncEngine, clock: Clock) -> None:
        self.engine, self.clock = engine, clock
        self.sessions = session_factory(engine)

    async def record(self, updates: Sequence[Received]) -> int:
        return await record(self.sessions, updates, self.clock.now())

    def claim_next(self) -> AbstractAsyncContextManager[Claim | None]:
        return claim_next(self.engine)

    async def done(self, claim: Claim) -> None:
        await claim.done(self.clock.now())

    @asynccontextmanager
    async def handling(self, update_id: int) -> AsyncIterator[Handling]:
        """One transaction for everything the update's handlers write; committed when the block ends."""
        async with self.engine.connect() as connection, connection.begin():
            sessions = async_sessionmaker(
                bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
            )
            handling = Handling(update_id, sessions)
            token = _HANDLING.set(handling)
            try:
                yield handling
            finally:
                _HANDLING.reset(token)

    @asynccontextmanager
    async def journal(self, key: int, first_seq: int = 0) -> AsyncIterator[Handling]:
        """Bot API calls journalled under `key` (no transaction of its own)."""
        handling = Handling(key, None, seq=first_seq)
        token = _HANDLING.set(handling)
        try:
            yield handling
        finally:
            _HANDLING.reset(token)

    async def state_of(self, handling: Handling, user_id: int) -> dict[str, Any]:
        assert handling.sessions is not None
        async with handling.sessions() as session:
            return await load_state(session, user_id)

    async def handled(
        self, handling: Handling, user_id: int | None, state: dict[str, Any], senders: Sequence[str]
    ) -> None:
        assert handling.sessions is not None
        async with handling.sessions() as session, session.begin():
            if user_id is not None:
                await save_state(session, user_id, state, self.clock.now())
            await mark_handled(session, handling.update_id, senders, self.clock.now())

    async def recorded_call(self, update_id: int, seq: int) -> InboxCall | None:
        return await recorded_call(self.sessions, update_id, seq)

    async def record_call(self, update_id: int, seq: int, method: str, status: int, response: str) -> None:
        await record_call(self.sessions, update_id, seq, method, status, response)

    async def forget_call(self, update_id: int, seq: int) -> None:
        await forget_call(self.sessions, update_id, seq)

    def leader(self, name: str) -> AbstractAsyncContextManager[None]:
        return leader(self.engine, name)

    def sender_lock(self, sender: str) -> AbstractAsyncContextManager[None]:
        return sender_lock(self.engine, sender)

    async def pending(self) -> int:
        return await pending(self.sessions)

    async def prune(self) -> None:
        await prune(self.sessions, self.clock.now())
