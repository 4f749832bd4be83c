"""Step 1 of the loop, 群众点单, its hot path: registering requests and dispatching them at once.

Concurrent `create_ticket` calls of a process share one transaction (group commit, `_Coalescer`): a call made
while none is in flight starts one at once; calls made meanwhile go together in the next. Each request is
still all or nothing on its own: a request that fails validation fails alone, and a failed batch is retried
one request at a time. A batch writes one multi-row INSERT per table (PostgreSQL: all of them in one
statement, with no BEGIN/COMMIT around the batch: `_write_postgresql`); each ticket is dispatched by the
same `tickets.dispatch.decide` as the one-ticket path, in request order against the loads the tickets
before it left, exactly as if they were created one by one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from sqlalchemy import (
    JSON,
    BindParameter,
    Column,
    DateTime,
    Integer,
    String,
    Table,
    TypeDecorator,
    bindparam,
    insert,
    literal,
    null,
    select,
    text,
    type_coerce,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.orm import configure_mappers, make_transient_to_detached

from tickets import orgchart, outbox, routing
from tickets.actors import SYSTEM, Actor
from tickets.catalogue import Category
from tickets.core import ServiceCore
from tickets.dispatch import decide
from tickets.errors import DomainError, NotAllowed, ValidationError
from tickets.models import (
    Base,
    Level,
    Notification,
    Offer,
    Resident,
    Responder,
    Status,
    Ticket,
    TicketCounter,
    TicketEvent,
    Urgency,
    split_channel_id,
)
from tickets.outbox import Kind, Recipient
from tickets.privacy import clean_text, normalize_phone
from tickets.transitions import Action, creation_event, event_row

MAX_BATCH = 64  # requests a create transaction takes at most (group commit)
# A request registered later than it was made (saved while the database was away) keeps the time it was
# made, if that is at most this old; a minute's difference between processes' clocks counts as now.
MAX_BACKDATE = timedelta(days=7)
CLOCK_SKEW = timedelta(minutes=1)

# The tables the create path writes with Core (multi-row statements).
TICKETS, EVENTS, OFFERS, OUTBOX = (
    cast(Table, m.__table__) for m in (Ticket, TicketEvent, Offer, Notification)
)
# The create path's statements, built once (building costs more CPU than sending them).
# The batch's residents (with the org token) and the responders of their home communities with their loads,
# in one statement (a round trip fewer a batch): kind 0 rows are residents, kind 1 responders (read by
# routing.pooled). Where a request is filed elsewhere (another community named), that community's
# responders are read after it (routing.pool).
_IDS: BindParameter[list[int]] = bindparam("ids", expanding=True)
_RESPONDER_ONLY = routing.POOL_COLUMNS[3:]  # on_duty ... last_assigned_at
_RESIDENTS = select(
    literal(0).label("kind"),
    Resident.id,
    Resident.community_id,
    Resident.grid_id,
    Resident.channel_id,
    Resident.phone,
    orgchart.version_column().label("org_version"),
    type_coerce(null(), Responder.role.type).label("role"),
    *(type_coerce(null(), c.type).label(c.key) for c in _RESPONDER_ONLY),
    type_coerce(null(), Integer()).label("load"),
).where(Resident.id.in_(_IDS))
_HOME_RESPONDERS = select(
    literal(1),
    Responder.id,
    Responder.community_id,
    null(),
    null(),
    null(),
    null(),
    Responder.role,
    *_RESPONDER_ONLY,
    routing.open_load(),
).where(
    Responder.active, Responder.community_id.in_(select(Resident.community_id).where(Resident.id.in_(_IDS)))
)
_RESIDENTS_AND_RESPONDERS = union_all(_RESIDENTS, _HOME_RESPONDERS).order_by(text("kind"), text("id"))
_INSERT_TICKETS = insert(TICKETS).returning(TICKETS.c.id, TICKETS.c.number)
_INSERT_EVENTS, _INSERT_OFFERS, _INSERT_OUTBOX = insert(EVENTS), insert(OFFERS), insert(OUTBOX)


@functools.cache
def _counter_upsert(dialect: str) -> Any:
    insert_ = postgresql.insert if dialect == "postgresql" else sqlite.insert
    k = bindparam("k", type_=Integer())
    return (
        insert_(TicketCounter)
        .values(day=bindparam("day"), last=k)
        .on_conflict_do_update(index_elements=["day"], set_={"last": TicketCounter.last + k})
        .returning(TicketCounter.last)
    )


NUMBER_BLOCK = 50  # numbers a process reserves at once on PostgreSQL (hi/lo, see NumberBlocks)


class NumberBlocks:
    """Ticket numbers on PostgreSQL, hi/lo: a process reserves a block of NUMBER_BLOCK numbers of a day in
    one short transaction of its own (`last = last + 50` on the day's counter row, committed at once) and
    hands them out from memory. The day's row is then locked for one tiny transaction per 50 tickets of a
    process, not for the whole of every create transaction of every process (the hot row that serialised
    creates across processes).

    What it costs, on purpose: numbers stay unique and keep the form MH-YYYYMMDD-NNNN, but they are
    consecutive only within a process, not in creation order across processes, and the unused rest of a
    block is never given out (a process that stops, or a day that ends, leaves a gap of at most
    NUMBER_BLOCK - 1 numbers), nor are the numbers of a create transaction that failed. The block is
    reserved from inside the caller's transaction on a second connection, only once the requests are known
    to be valid (an invalid request writes nothing, not even a block)."""

    def __init__(self, size: int = NUMBER_BLOCK) -> None:
        self.size = size
        self.free: dict[str, list[int]] = {}  # day -> numbers reserved and not yet given, ascending

    async def reserve(self, engine: AsyncEngine, days: Sequence[str]) -> dict[str, list[int]]:
        """Numbers for these days (one per entry), taken out of the blocks; blocks are reserved as needed.
        No lock: concurrent callers of a process may each reserve a block; both blocks get used."""
        wanted: dict[str, int] = {}
        for day in days:
            wanted[day] = wanted.get(day, 0) + 1
        taken: dict[str, list[int]] = {}
        for day, k in sorted(wanted.items()):
            while len(self.free.get(day, ())) < k:
                block = max(self.size, k)
                async with engine.begin() as conn:
                    last = (
                        await conn.execute(_counter_upsert("postgresql"), {"day": day, "k": block})
                    ).scalar_one()
                self.free[day] = sorted([*self.free.get(day, ()), *range(last - block + 1, last + 1)])
            free = self.free[day]
            taken[day], self.free[day] = free[:k], free[k:]
        # Past days stay usable (a request saved while the database was away keeps its day) but not for ever.
        for day in sorted(self.free)[: max(0, len(self.free) - 10)]:
            del self.free[day]
        return taken


@dataclass(frozen=True)
class NewTicket:
    """A resident's request (群众点单) as the edges hand it over."""

    resident_id: int
    category: str
    text: str
    community: str | None = None  # code or name; defaults to the resident's home community
    compound: str | None = None  # 小区 name, locates the grid
    grid: str | None = None  # grid code, when known
    address: str | None = None  # free text: building and room
    phone: str | None = None
    urgency: Urgency = Urgency.NORMAL
    intent: str | None = None
    confidence: float | None = None
    # When the resident made it, for a request registered later (saved while the database was away): the
    # ticket's created_at and the start of its deadlines. Aware, not in the future, at most MAX_BACKDATE old.
    received_at: datetime | None = None
    # Tell the resident the number through the outbox (Kind.REGISTERED): they are not waiting for a reply.
    announce: bool = False


@dataclass(frozen=True, slots=True)
class _Request:
    """A validated request, with its time and deadlines, waiting for its transaction."""

    request: NewTicket
    now: datetime  # when it is registered (dispatch, offers, notifications)
    created: datetime  # when the resident made it (created_at, the number's day, the deadlines' start)
    text: str
    category: Category
    phone: str | None
    urgency: Urgency
    respond_by: datetime
    resolve_by: datetime


@dataclass(frozen=True, slots=True)
class _Placed:
    """A request whose resident and place (community, grid) are known."""

    request: _Request
    resident: Any  # a _RESIDENTS row (id, channel_id, phone, community_id, grid_id)
    community: orgchart.Place
    grid: orgchart.Place | None


M = TypeVar("M", bound=Base)


def _detached(model: type[M], values: Mapping[str, Any]) -> M:
    """A row written with Core as the ORM object a query would have returned (detached, every column
    loaded), so callers get the same kind of Ticket from every path."""
    configure_mappers()  # a no-op once done; new_instance() needs configured attributes
    instance: M = model.__mapper__.class_manager.new_instance()
    # Straight into the instance's dict (as a load does): setting 37 instrumented attributes one by one
    # cost more CPU than writing the row.
    instance.__dict__.update({column.key: values.get(column.key) for column in model.__table__.columns})
    make_transient_to_detached(instance)
    return instance


Rows = list[dict[str, Any]]


async def _write(
    conn: AsyncConnection,
    tickets: Rows,
    events: Rows,
    offers: Rows,
    notes: Rows,
    given: list[tuple[int, datetime]],
) -> list[int]:
    """The create path's writes, one multi-row statement a table (SQLite); the ids of the tickets. The
    other rows' ticket_id is the index of their ticket in `tickets` until then."""
    inserted = await conn.execute(_INSERT_TICKETS, tickets)
    ids_by_number = {number: id_ for id_, number in inserted.all()}
    ids = [ids_by_number[row["number"]] for row in tickets]
    for rows, statement in ((events, _INSERT_EVENTS), (offers, _INSERT_OFFERS), (notes, _INSERT_OUTBOX)):
        if rows:
            for row in rows:
                row["ticket_id"] = ids[row["ticket_id"]]
            await conn.execute(statement, rows)
    if given:
        await conn.execute(routing.GIVEN_WORK, [{"responder": r, "at": at} for r, at in given])
    return ids


async def _write_postgresql(
    conn: AsyncConnection,
    tickets: Rows,
    events: Rows,
    offers: Rows,
    notes: Rows,
    given: list[tuple[int, datetime]],
) -> list[int]:
    """The same writes as `_write` in one statement, one round trip (PostgreSQL): each table's rows go as
    one JSON parameter, read back by `json_to_recordset` in a data-modifying CTE; the other rows find their
    ticket by its number. Sent one statement a table through SQLAlchemy (or as one array parameter a
    column: asyncpg checks each array's type in Python), the writes of a one-ticket transaction cost more
    client CPU than everything else in it (issue 16: 8 processes of one worker each are CPU bound)."""
    tables = {"t": tickets, "e": events, "o": offers, "n": notes}
    shape = tuple((name, tuple(rows[0]) if rows else ()) for name, rows in tables.items())
    statement, columns = _postgresql_statement(conn.dialect, shape, bool(given))
    numbers = [row["number"] for row in tickets]
    params: dict[str, Any] = {}
    for name, rows in tables.items():
        if rows:
            convert = columns[name]
            link = name != "t"
            params[name] = json.dumps(
                [
                    {key: f(row[key]) if f else row[key] for key, f in convert}
                    | ({"ord": n, "ticket_id": numbers[row["ticket_id"]]} if link else {"ord": n})
                    for n, row in enumerate(rows)
                ]
            )
    if given:
        at = columns["g"][0][1]
        assert at is not None
        params["g"] = json.dumps([{"id": r, "at": at(when)} for r, when in given])
    ids_by_number = {number: id_ for id_, number in (await conn.execute(statement, params)).all()}
    return [ids_by_number[number] for number in numbers]


_WRITTEN = {"t": TICKETS, "e": EVENTS, "o": OFFERS, "n": OUTBOX}
Convert = Callable[[Any], Any] | None


def _to_json(column: Column[Any], dialect: Any) -> tuple[str, Convert]:
    """A column's type in json_to_recordset's column list and how a row's value becomes JSON for it: its
    bind processor (encryption, UTC), times as ISO 8601; a JSON column's value goes in as it is (its text
    is what json.dumps makes of it, as SQLAlchemy's own JSON type would store)."""
    type_ = column.type
    impl = type_.impl_instance if isinstance(type_, TypeDecorator) else type_
    if isinstance(impl, JSON):
        return "JSON", None
    process = type_.dialect_impl(dialect).bind_processor(dialect)
    if isinstance(impl, DateTime):

        def iso(value: datetime | None) -> str | None:
            return None if value is None else (process(value) if process else value).isoformat()

        return type_.compile(dialect=dialect), iso
    # TEXT, not VARCHAR(n): the INSERT refuses a value that is too long (its request fails, alone).
    return ("TEXT" if isinstance(impl, String) else type_.compile(dialect=dialect)), process


@functools.cache
def _postgresql_statement(
    dialect: Any, shape: tuple[tuple[str, tuple[str, ...]], ...], given: bool
) -> tuple[Any, dict[str, list[tuple[str, Convert]]]]:
    """The one-statement write for rows of this shape (which tables have rows, and their keys), built once
    a shape, with how each column's values become JSON."""
    quote = dialect.identifier_preparer.quote
    ctes: list[str] = []
    columns: dict[str, list[tuple[str, Convert]]] = {}
    for name, keys in shape:
        table = _WRITTEN[name]
        columns[name] = []
        if not keys:
            continue
        missing = [c.key for c in table.columns if c.default is not None and c.key not in keys]
        if missing:  # a default SQLAlchemy would have filled in: the rows must say it
            raise ValueError(f"{table.name} rows without {missing}")
        link = name != "t"  # ticket_id: the ticket's number until the ticket has an id
        defined, selected = [], []
        for key in keys:
            if link and key == "ticket_id":
                defined.append("ticket_id TEXT")
                selected.append("t.id")
                continue
            sql_type, convert = _to_json(table.c[key], dialect)
            defined.append(f"{quote(key)} {sql_type}")
            selected.append(f"x.{quote(key)}")
            columns[name].append((key, convert))
        source = f"json_to_recordset(CAST(:{name} AS JSON)) AS x({', '.join(defined)}, ord INTEGER)"
        insert_ = (
            f"INSERT INTO {table.name} ({', '.join(quote(k) for k in keys)}) "
            f"SELECT {', '.join(selected)} FROM {source}"
        )
        # Ids in the rows' order, as multi-row INSERTs give them (the outbox is delivered in id order).
        if link:
            ctes.append(f"{name} AS ({insert_} JOIN t ON t.number = x.ticket_id ORDER BY x.ord)")
        else:
            ctes.append(f"t AS ({insert_} ORDER BY x.ord RETURNING id, number)")
    columns["g"] = []
    if given:
        # Locked in id order first (FOR NO KEY UPDATE, as the UPDATE itself locks): concurrent creates
        # lock responders in one order (no deadlock).
        at_type, at = _to_json(cast(Table, Responder.__table__).c.last_assigned_at, dialect)
        columns["g"] = [("at", at)]
        ctes.append(
            "g AS (UPDATE responders SET last_assigned_at = w.at "
            "FROM (SELECT id FROM responders WHERE id IN (SELECT id FROM json_to_recordset(CAST(:g AS JSON)) "
            "AS v(id INTEGER)) ORDER BY id FOR NO KEY UPDATE) AS l, "
            f"json_to_recordset(CAST(:g AS JSON)) AS w(id INTEGER, at {at_type}) "
            "WHERE responders.id = l.id AND w.id = l.id)"
        )
    return text(f"WITH {', '.join(ctes)} SELECT id, number FROM t"), columns


class _Coalescer:
    """Group commit for create_ticket: requests made while a batch is in flight wait and go together in
    the next one; a request made when nothing is in flight starts a batch at once (no added latency when
    idle). A caller cancelled before its batch started is dropped from it (no ticket)."""

    def __init__(
        self, run: Callable[[list[_Request]], Awaitable[list[Ticket | Exception]]], max_batch: int
    ) -> None:
        self.run, self.max_batch = run, max_batch
        self.loop: asyncio.AbstractEventLoop | None = None
        self.pending: list[tuple[_Request, asyncio.Future[Ticket]]] = []
        self.task: asyncio.Task[None] | None = None

    async def submit(self, item: _Request) -> Ticket:
        loop = asyncio.get_running_loop()
        if loop is not self.loop:  # a service used from another event loop (tests, scripts)
            self.loop, self.pending, self.task = loop, [], None
        future: asyncio.Future[Ticket] = loop.create_future()
        entry = (item, future)
        self.pending.append(entry)
        if self.task is None:
            self.task = loop.create_task(self._drain())
        try:
            return await future
        except asyncio.CancelledError:
            if entry in self.pending:
                self.pending.remove(entry)
            raise

    async def _drain(self) -> None:
        batch: list[tuple[_Request, asyncio.Future[Ticket]]] = []
        try:
            while self.pending:
                batch = [entry for entry in self.pending[: self.max_batch] if not entry[1].done()]
                del self.pending[: self.max_batch]  # a done future here: its caller was cancelled
                if not batch:
                    continue
                outcomes: list[Ticket | Exception]
                try:
                    outcomes = await self.run([item for item, _ in batch])
                    if len(outcomes) != len(batch):
                        raise RuntimeError(f"{len(outcomes)} outcomes for {len(batch)} requests")
                except Exception as error:  # run() returns database errors per request: a bug
                    outcomes = [error] * len(batch)
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue
                    if isinstance(outcome, Exception):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
                batch = []
                # Let the callers just answered run first: one that makes its next request at once
                # (a worker loop) joins the next batch instead of waiting for the one after it.
                await asyncio.sleep(0)
        except BaseException:  # cancelled (the loop is closing): nobody may be left waiting
            for _, future in [*batch, *self.pending]:
                future.cancel()
            self.pending = []
            raise
        finally:
            self.task = None


class Creating(ServiceCore):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._coalescer = _Coalescer(self._create_all, max_batch=MAX_BATCH)
        self._numbers = NumberBlocks()
        bind = self.sessions.kw.get("bind")
        self._autocommit: AsyncEngine | None = (
            bind.execution_options(isolation_level="AUTOCOMMIT")
            if bind is not None and bind.dialect.name == "postgresql"
            else None
        )

    async def create_ticket(self, request: NewTicket) -> Ticket:
        """Register the request and dispatch it at once. The returned ticket says honestly whether a
        responder was found (status dispatched) or it waits for staff (status created). Shares a
        transaction with concurrent calls (see the module's docstring)."""
        return await self._coalescer.submit(self._prepare(request))

    async def create_tickets(self, requests: Sequence[NewTicket]) -> list[Ticket | Exception]:
        """Several requests in one transaction, in order: a ticket for each, or the error that request
        alone met (invalid, unknown resident or community); if the transaction fails they are retried
        one by one, so a database error reaches only the request that causes it."""
        outcomes: list[Ticket | Exception | None] = [None] * len(requests)
        valid: list[tuple[int, _Request]] = []
        for i, request in enumerate(requests):
            try:
                valid.append((i, self._prepare(request)))
            except DomainError as error:
                outcomes[i] = error
        for (i, _), outcome in zip(valid, await self._create_all([p for _, p in valid]), strict=True):
            outcomes[i] = outcome
        return [o for o in outcomes if o is not None]

    def _prepare(self, request: NewTicket) -> _Request:
        """Everything about a request that needs no database: validation, the clock, the deadlines."""
        text = self._validate_text(request.text)
        category = self.catalogue.get(request.category)
        phone = normalize_phone(request.phone) if request.phone else None
        if request.confidence is not None and not 0.0 <= request.confidence <= 1.0:
            raise ValidationError("confidence must be between 0 and 1")
        try:
            urgency = Urgency(request.urgency)
        except ValueError:
            raise ValidationError("紧急程度只能选“一般”或“紧急”。") from None
        now = self.clock.now()
        created = self._received(request.received_at, now)
        urgent = urgency is Urgency.URGENT
        return _Request(
            request,
            now,
            created,
            text,
            category,
            phone,
            urgency,
            respond_by=self.calendar.deadline(created, category.respond_within, urgent=urgent),
            resolve_by=self.calendar.deadline(created, category.resolve_within, urgent=urgent),
        )

    @staticmethod
    def _received(received_at: datetime | None, now: datetime) -> datetime:
        """When a request was made: `received_at` when given (see NewTicket), else now."""
        if received_at is None:
            return now
        if received_at.utcoffset() is None:
            raise ValidationError("received_at must be timezone-aware")
        if received_at > now + CLOCK_SKEW:
            raise ValidationError("诉求的提交时间不能晚于现在。")
        if received_at < now - MAX_BACKDATE:
            raise ValidationError(f"诉求的提交时间不能早于 {MAX_BACKDATE.days} 天前。")
        return min(received_at, now)

    async def _create_all(self, items: Sequence[_Request]) -> list[Ticket | Exception]:
        if not items:
            return []
        try:
            return await self._create_batch(items)
        except Exception as error:
            self._chart = None  # whatever went wrong, do not trust the cached org chart for the retry
            if len(items) == 1:
                return [error]
        outcomes: list[Ticket | Exception] = []
        for item in items:  # one by one: the others must not fail with the one that breaks
            try:
                outcomes += await self._create_batch([item])
            except Exception as error:
                outcomes.append(error)
        return outcomes

    @contextlib.asynccontextmanager
    async def _batch_connection(self) -> AsyncIterator[AsyncConnection]:
        """Where a batch runs. SQLite: a transaction (a unit of work). PostgreSQL: a pooled connection
        without one (BEGIN and COMMIT are two round trips of the three or four a one-ticket batch needs):
        the batch's writes are one statement (`_write_postgresql`), atomic by itself, and its reads take no
        lock, each seeing what is committed when it runs, as it would in a READ COMMITTED transaction."""
        if self._autocommit is None:
            async with self._work() as session:
                yield await session.connection()
            return
        async with self._autocommit.connect() as conn:
            yield conn

    async def _create_batch(self, items: Sequence[_Request]) -> list[Ticket | Exception]:
        """The batch (see `_batch_connection`): residents (with the org token), responders and their loads
        of the batch's communities, the day's numbers, then one multi-row INSERT per table and one UPDATE
        of the responders given work (PostgreSQL: one statement for all of them)."""
        outcomes: list[Ticket | Exception | None] = [None] * len(items)
        async with self._batch_connection() as conn:
            ids = sorted({p.request.resident_id for p in items})
            found = (await conn.execute(_RESIDENTS_AND_RESPONDERS, {"ids": ids})).all()
            rows = [row for row in found if row.kind == 0]
            residents = {row.id: row for row in rows}
            home = (routing.pooled([row for row in found if row.kind == 1]), {r.community_id for r in rows})
            chart = await self._org(conn, rows[0].org_version) if rows else None
            placed: list[tuple[int, _Placed]] = []
            for i, item in enumerate(items):
                resident = residents.get(item.request.resident_id)
                try:
                    if resident is None or chart is None:
                        raise NotAllowed("请先和民呼助手打个招呼,我们才能为您登记。")
                    # A compound we do not know (a new building, a typo) still files at home, not an error.
                    community, grid = chart.locate(
                        item.request.community,
                        item.request.compound,
                        item.request.grid,
                        home=resident.community_id,
                    )
                    if grid is None and community.id == resident.community_id and resident.grid_id:
                        grid = chart.grids.get(resident.grid_id)
                except DomainError as error:
                    outcomes[i] = error
                    continue
                placed.append((i, _Placed(item, resident, community, grid)))
            if placed:
                assert chart is not None
                tickets = await self._insert_dispatched(conn, chart, [p for _, p in placed], home)
                for (i, _), ticket in zip(placed, tickets, strict=True):
                    outcomes[i] = ticket
        return [o for o in outcomes if o is not None]

    async def _insert_dispatched(
        self,
        conn: AsyncConnection,
        chart: orgchart.OrgChart,
        placed: Sequence[_Placed],
        home: tuple[tuple[list[routing.Pooled], routing.Loads], set[int]],
    ) -> list[Ticket]:
        """`home`: the responders and loads of the residents' home communities, and those communities."""
        (pooled, loads), read = home
        elsewhere = {p.community.id for p in placed} - read
        if elsewhere:  # requests filed in another community than their resident's
            more, more_loads = await routing.pool(conn, elsewhere)
            pooled, loads = sorted([*pooled, *more], key=lambda r: r.id), loads | more_loads
        by_community: dict[int | None, list[routing.Pooled]] = {}
        for responder in pooled:
            by_community.setdefault(responder.community_id, []).append(responder)
        numbers = await self._next_numbers(conn, [p.request.created for p in placed])
        values: list[dict[str, Any]] = []
        # Rows that need the tickets' ids, keyed by the ticket's index until the INSERT returns them.
        events: list[dict[str, Any]] = []
        offers: list[dict[str, Any]] = []
        notes: list[dict[str, Any]] = []
        given: dict[int, datetime] = {}  # responder id -> last_assigned_at to write
        for n, (place, number) in enumerate(zip(placed, numbers, strict=True)):
            item, resident = place.request, place.resident
            request, category, now, created = item.request, item.category, item.now, item.created
            decision = decide(
                category,
                category.dispatch,
                Level.GRID,  # new tickets start at grid level
                by_community.get(place.community.id, []),
                loads,
                in_grid=chart.grid_responders.get(place.grid.id, frozenset()) if place.grid else frozenset(),
            )
            mine = [creation_event(n, created, Actor.resident(resident.id), category.code, int(Level.GRID))]
            if decision.chosen:
                dispatch = event_row(
                    n, 2, now, SYSTEM, Action.DISPATCH, Status.CREATED, decision.status, decision.event_data()
                )
                mine.append(dispatch)
                offers += decision.offers(n, dispatch["seq"], now)
                for responder in pooled:
                    if responder.id in decision.chosen:
                        responder.last_assigned_at = given[responder.id] = now
                if decision.assignee is not None:
                    loads[decision.assignee] = loads.get(decision.assignee, 0) + 1
            events += mine
            payload = outbox.ticket_payload(number, category.code)
            notes += [
                outbox.row(kind, Recipient.RESPONDER, to, n, now, payload | extra)
                for kind, to, extra in decision.notes()
            ]
            if request.announce:
                notes.append(outbox.row(Kind.REGISTERED, Recipient.RESIDENT, resident.id, n, now, payload))
            values.append(
                {
                    "number": number,
                    "resident_id": resident.id,
                    "category": category.code,
                    "text": item.text,
                    "intent": request.intent,
                    "confidence": request.confidence,
                    "street_id": place.community.parent,
                    "community_id": place.community.id,
                    "grid_id": place.grid.id if place.grid else None,
                    "address": clean_text(" ".join(filter(None, [request.compound, request.address])))[:200]
                    or None,
                    "contact_phone": item.phone or resident.phone,
                    "urgency": item.urgency,
                    "channel": split_channel_id(resident.channel_id)[0],
                    "status": decision.status,
                    "dispatch_mode": category.dispatch,
                    "assignee_id": decision.assignee,
                    "level": int(Level.GRID),
                    "created_at": created,
                    "respond_by": item.respond_by,
                    "first_respond_by": item.respond_by,
                    "resolve_by": item.resolve_by,
                    "first_dispatched_at": now if decision.chosen else None,
                    "reopen_count": 0,
                    "version": mine[-1][
                        "seq"
                    ],  # the row's version is its last event's seq, as apply() leaves it
                }
            )

        # In id order: concurrent transactions lock responders in one order (no deadlock).
        work = sorted(given.items())
        if conn.dialect.name == "postgresql":
            ids = await _write_postgresql(conn, values, events, offers, notes, work)
        else:
            ids = await _write(conn, values, events, offers, notes, work)
        return [_detached(Ticket, row | {"id": id_}) for row, id_ in zip(values, ids, strict=True)]

    def _day(self, when: datetime) -> str:
        return when.astimezone(self.calendar.tz).strftime("%Y%m%d")

    def forget_reserved_numbers(self) -> None:
        """Drop this process's unused blocks of numbers: for whoever empties ticket_counters (tests, the
        benchmark), after which those blocks would be given out again."""
        self._numbers.free.clear()

    async def _next_number(self, session: AsyncSession, now: datetime) -> str:
        return (await self._next_numbers(session, [now]))[0]

    async def _next_numbers(self, db: AsyncSession | AsyncConnection, nows: Sequence[datetime]) -> list[str]:
        """MH-YYYYMMDD-NNNN, counted per local day, one for each time given, in order.

        PostgreSQL: from this process's blocks (NumberBlocks), a block reserved when needed in a short
        transaction of its own, so the day's row is not locked for the rest of the caller's. SQLite (one
        writer at a time anyway): one upsert per day (`last = last + k`) in the caller's transaction,
        numbers consecutive with no gaps; its row lock lasts until COMMIT, so callers take numbers after
        their reads."""
        days = [self._day(now) for now in nows]
        dialect = db.get_bind().dialect if isinstance(db, AsyncSession) else db.dialect
        if dialect.name == "postgresql":
            reserved = await self._numbers.reserve(self.sessions.kw["bind"], days)
            return [f"MH-{day}-{reserved[day].pop(0):04d}" for day in days]
        wanted: dict[str, int] = {}
        for day in days:
            wanted[day] = wanted.get(day, 0) + 1
        statement = _counter_upsert(dialect.name)
        nxt: dict[str, int] = {}
        for day, k in sorted(wanted.items()):
            nxt[day] = (await db.execute(statement, {"day": day, "k": k})).scalar_one() - k + 1
        numbers = []
        for day in days:
            numbers.append(f"MH-{day}-{nxt[day]:04d}")
            nxt[day] += 1
        return numbers
