"""The ticket loop as one service: 群众点单 → 社区派单 → 党员接单 → 办结 → 评价.

Each public method is one unit of work (one session, one transaction): it checks who is asking, validates
its input, changes the ticket through the state machine, appends the event and writes the outbox rows for
the notifications, all or nothing. The one exception is creating tickets, the hot path: concurrent
`create_ticket` calls of a process share a transaction (group commit, see `_Coalescer`), each request still
all or nothing on its own (a failed batch is retried one request at a time).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from rapidfuzz import fuzz
from sqlalchemy import Integer, Table, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker
from sqlalchemy.orm import configure_mappers, make_transient_to_detached
from sqlalchemy.orm.exc import StaleDataError

from tickets import metrics, orgchart, outbox, points, routing
from tickets.actors import SYSTEM, Actor
from tickets.calendar import WorkCalendar
from tickets.catalogue import Catalogue, Category, DispatchMode, Role
from tickets.clock import Clock, SystemClock
from tickets.db import unit_of_work
from tickets.errors import (
    AlreadyTaken,
    ConcurrentChange,
    DomainError,
    EmptyText,
    IllegalTransition,
    NotAllowed,
    ReasonRequired,
    ResponderNotFound,
    TextTooLong,
    TicketNotFound,
    TooManyTickets,
    ValidationError,
)
from tickets.models import (
    OPEN_TICKET_SQL,
    Base,
    Community,
    Grid,
    Level,
    Notification,
    Offer,
    Rating,
    Resident,
    Responder,
    Status,
    Ticket,
    TicketCounter,
    TicketEvent,
    Urgency,
)
from tickets.privacy import clean_text, normalize_phone, scrub
from tickets.transitions import apply, check, record_creation

MAX_TEXT = 4000
MAX_REASON = 500
# The tables the create path writes with Core (multi-row statements).
TICKETS, EVENTS, OFFERS, OUTBOX, RESPONDERS = (
    cast(Table, model.__table__) for model in (Ticket, TicketEvent, Offer, Notification, Responder)
)
# The create path's statements, built once (building costs more CPU than sending them).
_RESIDENTS = select(
    Resident.id,
    Resident.channel_id,
    Resident.phone,
    Resident.community_id,
    Resident.grid_id,
    orgchart.version_column(),
).where(Resident.id.in_(bindparam("ids", expanding=True)))
_INSERT_TICKETS = insert(TICKETS).returning(TICKETS.c.id, TICKETS.c.number)
_INSERT_EVENTS, _INSERT_OFFERS, _INSERT_OUTBOX = insert(EVENTS), insert(OFFERS), insert(OUTBOX)
_GIVEN_WORK = (
    update(RESPONDERS)
    .where(RESPONDERS.c.id == bindparam("responder"))
    .values(last_assigned_at=bindparam("at"))
)


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


MAX_BATCH = 64  # requests a create transaction takes at most (group commit)
DUPLICATE_SIMILARITY = 85  # rapidfuzz ratio (0-100) above which two requests are the same matter


@dataclass(frozen=True)
class Policy:
    max_text: int = MAX_TEXT
    auto_close_after: timedelta = timedelta(days=7)
    # Off in the domain (None); the app turns them on (app.settings): intake() refuses a resident's
    # ticket beyond this many per hour, and links a near-identical request to the resident's open ticket.
    max_tickets_per_hour: int | None = None
    duplicate_window: timedelta | None = None


@dataclass(frozen=True)
class Intake:
    """What became of a request: a new ticket, or the resident's open ticket it duplicates."""

    ticket: Ticket
    duplicate: bool = False


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


@dataclass(frozen=True, slots=True)
class _Request:
    """A validated request, with its time and deadlines, waiting for its transaction."""

    request: NewTicket
    now: datetime
    text: str
    category: Category
    phone: str | None
    urgency: Urgency
    respond_by: datetime
    resolve_by: datetime


def _event(
    ticket: int, seq: int, at: datetime, actor: str, action: str, before: Status | None, after: Status
) -> dict[str, Any]:
    return {
        "ticket_id": ticket,
        "seq": seq,
        "at": at,
        "actor": actor,
        "action": action,
        "from_status": before,
        "to_status": after,
    }


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


def _fold(text: str) -> str:
    """Text as compared for duplicates: no whitespace or punctuation, lower case."""
    return "".join(ch for ch in text.lower() if ch.isalnum())


def _reason(reason: str | None) -> str:
    text = clean_text(reason or "")
    if not text:
        raise ReasonRequired()
    return text[:MAX_REASON]


class TicketService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        clock: Clock | None = None,
        catalogue: Catalogue | None = None,
        calendar: WorkCalendar | None = None,
        policy: Policy | None = None,
    ) -> None:
        self.sessions = sessions
        self.clock = clock or SystemClock()
        self.catalogue = catalogue or Catalogue.load()
        self.calendar = calendar or WorkCalendar.for_catalogue(self.catalogue)
        self.policy = policy or Policy()
        self._chart: orgchart.OrgChart | None = None
        self._coalescer = _Coalescer(self._create_all, max_batch=MAX_BATCH)

    @asynccontextmanager
    async def _work(self) -> AsyncIterator[AsyncSession]:
        """A unit of work; a lost optimistic-lock race becomes a domain error."""
        try:
            async with unit_of_work(self.sessions) as session:
                yield session
        except StaleDataError:
            raise ConcurrentChange() from None

    # ------------------------------------------------------------------ residents

    async def resident_for(self, channel_id: str, display_name: str | None = None) -> Resident:
        """The resident behind a channel identity (telegram:123, web:abc), created on first contact."""
        channel_id = clean_text(channel_id)
        if not channel_id or ":" not in channel_id or len(channel_id) > 128:
            raise ValidationError("无法识别的用户身份。")
        async with self._work() as session:
            resident = await session.scalar(select(Resident).where(Resident.channel_id == channel_id))
            if resident is None:
                resident = Resident(
                    channel_id=channel_id,
                    display_name=clean_text(display_name or "")[:50] or None,
                    created_at=self.clock.now(),
                )
                session.add(resident)
                await session.flush()
            return resident

    async def remember_resident(
        self,
        resident_id: int,
        *,
        phone: str | None = None,
        community: str | None = None,
        compound: str | None = None,
        address: str | None = None,
        consent: bool = False,
    ) -> Resident:
        """Keep what the resident told us so they need not say it twice."""
        async with self._work() as session:
            resident = await self._resident(session, resident_id)
            if phone:
                resident.phone = normalize_phone(phone)
            if community:
                chart = await self._org(session, await orgchart.current_version(session))
                found, grid = chart.locate(community, compound, None)
                resident.community_id, resident.grid_id = found.id, grid.id if grid else None
            if address:
                resident.address = clean_text(address)[:200]
            if consent and resident.consent_at is None:
                resident.consent_at = self.clock.now()
            return resident

    async def _resident(self, session: AsyncSession, resident_id: int) -> Resident:
        resident = await session.get(Resident, resident_id)
        if resident is None:
            raise NotAllowed("请先和民呼助手打个招呼,我们才能为您登记。")
        return resident

    # ------------------------------------------------------------------ 群众点单

    def _validate_text(self, text: str | None) -> str:
        cleaned = clean_text(text or "")
        if not cleaned:
            raise EmptyText()
        if len(cleaned) > self.policy.max_text:
            raise TextTooLong(limit=self.policy.max_text)
        return cleaned

    async def create_ticket(self, request: NewTicket) -> Ticket:
        """Register the request and dispatch it at once. The returned ticket says honestly whether a
        responder was found (status dispatched) or it waits for staff (status created).

        Concurrent calls in one process share a transaction (group commit, `_Coalescer`): a call made
        while none is in flight starts one at once; calls made meanwhile go together in the next. A
        request that fails validation fails alone, before any of that."""
        prepared = self._prepare(request)
        return await self._coalescer.submit(prepared)

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
        urgent = urgency is Urgency.URGENT
        return _Request(
            request,
            now,
            text,
            category,
            phone,
            urgency,
            respond_by=self.calendar.deadline(now, category.respond_within, urgent=urgent),
            resolve_by=self.calendar.deadline(now, category.resolve_within, urgent=urgent),
        )

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

    async def _org(self, session: AsyncSession, version: str | None) -> orgchart.OrgChart:
        """The cached org chart, reloaded in this session when `version` (the database's token, read by
        the caller) says it changed, or when it is older than orgchart.MAX_AGE."""
        now = self.clock.now()
        chart = self._chart
        if chart is None or chart.stale(version, now):
            chart = self._chart = await orgchart.load(session, version, now)
        return chart

    async def _create_batch(self, items: Sequence[_Request]) -> list[Ticket | Exception]:
        """One transaction for the batch: residents (with the org token), responders and their loads of
        the batch's communities, the day's numbers, then one multi-row INSERT per table and one UPDATE of
        the responders given work. Each ticket is routed in request order against the loads and
        round-robin times left by the tickets before it, exactly as if they were created one by one, and
        is inserted already dispatched, its `create` and `dispatch` events both written."""
        outcomes: list[Ticket | Exception | None] = [None] * len(items)
        async with self._work() as session:
            conn = await session.connection()
            ids = sorted({p.request.resident_id for p in items})
            rows = (await conn.execute(_RESIDENTS, {"ids": ids})).all()
            residents = {row[0]: row for row in rows}
            chart = await self._org(session, rows[0][5]) if rows else None
            placed: list[tuple[int, _Request, Any, orgchart.Place, orgchart.Place | None]] = []
            for i, item in enumerate(items):
                resident = residents.get(item.request.resident_id)
                try:
                    if resident is None or chart is None:
                        raise NotAllowed("请先和民呼助手打个招呼,我们才能为您登记。")
                    # A compound we do not know (a new building, a typo) still files at home, not an error.
                    community, grid = chart.locate(
                        item.request.community, item.request.compound, item.request.grid, home=resident[3]
                    )
                    if grid is None and community.id == resident[3] and resident[4]:
                        grid = chart.grids.get(resident[4])
                except DomainError as error:
                    outcomes[i] = error
                    continue
                placed.append((i, item, resident, community, grid))
            if placed:
                assert chart is not None
                tickets = await self._insert_dispatched(conn, chart, placed)
                for (i, *_), ticket in zip(placed, tickets, strict=True):
                    outcomes[i] = ticket
        return [o for o in outcomes if o is not None]

    async def _insert_dispatched(
        self,
        conn: AsyncConnection,
        chart: orgchart.OrgChart,
        placed: Sequence[tuple[int, _Request, Any, orgchart.Place, orgchart.Place | None]],
    ) -> list[Ticket]:
        pooled, loads = await routing.pool(conn, {community.id for _, _, _, community, _ in placed})
        by_community: dict[int | None, list[routing.Pooled]] = {}
        for responder in pooled:
            by_community.setdefault(responder.community_id, []).append(responder)
        numbers = await self._next_numbers(conn, [item.now for _, item, *_ in placed])
        values: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        offers: list[dict[str, Any]] = []
        # outbox rows to write once the tickets have ids: (ticket index, kind, responder id, now, payload)
        notes: list[tuple[int, str, int, datetime, dict[str, Any]]] = []
        given: dict[int, datetime] = {}  # responder id -> last_assigned_at to write
        for n, ((_, item, resident, community, grid), number) in enumerate(zip(placed, numbers, strict=True)):
            request, category, now = item.request, item.category, item.now
            grab = category.dispatch == DispatchMode.GRAB  # new tickets start at grid level
            mine = by_community.get(community.id, [])
            found = routing.rank(
                mine,
                loads,
                category,
                Level.GRID,
                in_grid=chart.grid_responders.get(grid.id, frozenset()) if grid else frozenset(),
                limit=category.offer_to if grab else 1,
            )
            row = {
                "number": number,
                "resident_id": resident[0],
                "category": category.code,
                "text": item.text,
                "intent": request.intent,
                "confidence": request.confidence,
                "street_id": community.parent,
                "community_id": community.id,
                "grid_id": grid.id if grid else None,
                "address": clean_text(" ".join(filter(None, [request.compound, request.address])))[:200]
                or None,
                "contact_phone": item.phone or resident[2],
                "urgency": item.urgency,
                "channel": resident[1].split(":", 1)[0],
                "status": Status.DISPATCHED if found else Status.CREATED,
                "dispatch_mode": category.dispatch,
                "assignee_id": found[0].id if found and not grab else None,
                "level": int(Level.GRID),
                "created_at": now,
                "respond_by": item.respond_by,
                "first_respond_by": item.respond_by,
                "resolve_by": item.resolve_by,
                "first_dispatched_at": now if found else None,
                "reopen_count": 0,
                "version": 2 if found else 1,  # the row version after each event, as apply() leaves it
            }
            values.append(row)
            events.append(
                _event(n, 1, now, str(Actor.resident(resident[0])), "create", None, Status.CREATED)
                | {"data": {"category": category.code, "level": int(Level.GRID)}}
            )
            payload = {"number": number, "category": category.code}
            if not found:
                for staff in mine:
                    if staff.role == Role.COMMUNITY_STAFF:
                        notes.append((n, "needs_dispatch", staff.id, now, {"level": 0, **payload}))
                continue
            for responder in found:
                responder.last_assigned_at = given[responder.id] = now
            dispatch = _event(n, 2, now, str(SYSTEM), "dispatch", Status.CREATED, Status.DISPATCHED)
            if grab:
                events.append(dispatch | {"data": {"mode": "grab", "offered": [r.id for r in found]}})
                for responder in found:
                    offers.append(
                        {
                            "ticket_id": n,
                            "responder_id": responder.id,
                            "round": 2,
                            "offered_at": now,
                            "state": "open",
                        }
                    )
                    notes.append((n, "offered", responder.id, now, payload))
            else:
                loads[found[0].id] = loads.get(found[0].id, 0) + 1
                events.append(dispatch | {"data": {"mode": "direct", "assignee": found[0].id}})
                notes.append((n, "assigned", found[0].id, now, payload))

        inserted = await conn.execute(_INSERT_TICKETS, values)
        ids_by_number = {number: id_ for id_, number in inserted.all()}
        ids = [ids_by_number[row["number"]] for row in values]
        for row in events:
            row["ticket_id"] = ids[row["ticket_id"]]
        await conn.execute(_INSERT_EVENTS, events)
        if offers:
            for row in offers:
                row["ticket_id"] = ids[row["ticket_id"]]
            await conn.execute(_INSERT_OFFERS, offers)
        if notes:
            await conn.execute(
                _INSERT_OUTBOX,
                [outbox.row(kind, "responder", to, ids[n], at, data) for n, kind, to, at, data in notes],
            )
        if given:
            # In id order: concurrent transactions lock responders in one order (no deadlock).
            await conn.execute(_GIVEN_WORK, [{"responder": r, "at": at} for r, at in sorted(given.items())])
        return [_detached(Ticket, row | {"id": id_}) for row, id_ in zip(values, ids, strict=True)]

    async def intake(self, request: NewTicket) -> Intake:
        """The resident-facing way in: a near-identical request (same resident and category, open ticket,
        within the policy's window) is linked to the open ticket, its text kept as a `link_duplicate`
        event; beyond the hourly limit TooManyTickets is raised; otherwise a new ticket is created."""
        text = self._validate_text(request.text)
        now = self.clock.now()
        window, limit = self.policy.duplicate_window, self.policy.max_tickets_per_hour
        if window is None and limit is None:
            return Intake(await self.create_ticket(request))
        recent = 0
        async with self._work() as session:  # both checks in one short transaction
            if window is not None:
                candidates = (
                    await session.scalars(
                        select(Ticket)
                        .where(
                            Ticket.resident_id == request.resident_id,
                            Ticket.category == request.category,
                            Ticket.status.in_((Status.CREATED, Status.DISPATCHED, Status.ACCEPTED)),
                            Ticket.created_at >= now - window,
                        )
                        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
                    )
                ).all()
                for ticket in candidates:
                    if fuzz.ratio(_fold(ticket.text), _fold(text)) >= DUPLICATE_SIMILARITY:
                        await apply(
                            session,
                            ticket,
                            "link_duplicate",
                            Status(ticket.status),
                            actor=Actor.resident(request.resident_id),
                            now=now,
                            text=text,
                        )
                        return Intake(ticket, duplicate=True)
            if limit is not None:
                recent = (
                    await session.scalar(
                        select(func.count(Ticket.id)).where(
                            Ticket.resident_id == request.resident_id,
                            Ticket.created_at > now - timedelta(hours=1),
                        )
                    )
                    or 0
                )
        if limit is not None and recent >= limit:
            raise TooManyTickets(limit=limit)
        return Intake(await self.create_ticket(request))

    async def handoff(self, resident_id: int, transcript: str, category: str | None = None) -> Ticket:
        """转人工: a ticket for the community staff with the conversation so far (phones and ID numbers
        masked), assigned by hand-off to the least busy staff member of the resident's community; when
        the community has no staff on record it waits for dispatch (staff are notified)."""
        text = self._validate_text(scrub(clean_text(transcript))[-self.policy.max_text :])
        category_row = self.catalogue.get(category or "social_assistance")
        now = self.clock.now()
        async with self._work() as session:
            resident = await self._resident(session, resident_id)
            if resident.community_id is None:
                raise ValidationError("请先告诉我们您住在哪个社区,方便安排社区工作人员联系您。")
            community = await session.get_one(Community, resident.community_id)
            respond_by = self.calendar.deadline(now, category_row.respond_within)
            ticket = Ticket(
                number="",  # taken last, see below
                resident_id=resident.id,
                category=category_row.code,
                text=text,
                intent="human_handoff",
                street_id=community.street_id,
                community_id=community.id,
                grid_id=resident.grid_id,
                address=resident.address,
                contact_phone=resident.phone,
                urgency=Urgency.NORMAL,
                channel=resident.channel_id.split(":", 1)[0],
                status=Status.CREATED,
                dispatch_mode=DispatchMode.DIRECT,
                level=Level.GRID,
                created_at=now,
                respond_by=respond_by,
                first_respond_by=respond_by,
                resolve_by=self.calendar.deadline(now, category_row.resolve_within),
            )
            # Reads first: the day's number locks its counter row until commit, and every create of every
            # process needs that row.
            on_record = list(await routing.staff_of(session, ticket, Level.COMMUNITY))
            staff = [s for s in on_record if s.on_duty] or on_record
            street_staff = [] if staff else await routing.staff_of(session, ticket, Level.STREET)
            loads = {
                s.id: await session.scalar(
                    select(func.count(Ticket.id)).where(
                        Ticket.assignee_id == s.id, Ticket.status.in_(routing.OPEN_WORK)
                    )
                )
                or 0
                for s in staff
            }
            ticket.number = await self._next_number(session, now)
            await record_creation(session, ticket, actor=Actor.resident(resident.id), now=now)
            if not staff:
                for street in street_staff:
                    outbox.notify(session, "needs_dispatch", "responder", street.id, ticket, now)
                return ticket
            chosen = min(staff, key=lambda s: (loads[s.id], s.id))
            ticket.assignee_id = chosen.id
            chosen.last_assigned_at = now
            await apply(
                session,
                ticket,
                "dispatch",
                Status.DISPATCHED,
                actor=SYSTEM,
                now=now,
                mode="handoff",
                assignee=chosen.id,
            )
            ticket.first_dispatched_at = now
            outbox.notify(session, "assigned", "responder", chosen.id, ticket, now, handoff=True)
            return ticket

    async def _next_number(self, session: AsyncSession, now: datetime) -> str:
        return (await self._next_numbers(session, [now]))[0]

    async def _next_numbers(self, db: AsyncSession | AsyncConnection, nows: Sequence[datetime]) -> list[str]:
        """MH-YYYYMMDD-NNNN, counted per local day, one for each time given, in order: one upsert per day
        (`last = last + k`) keeps concurrent creators apart. Its row lock lasts until COMMIT, so callers
        take numbers after their reads."""
        days = [now.astimezone(self.calendar.tz).strftime("%Y%m%d") for now in nows]
        wanted: dict[str, int] = {}
        for day in days:
            wanted[day] = wanted.get(day, 0) + 1
        dialect = db.get_bind().dialect if isinstance(db, AsyncSession) else db.dialect
        statement = _counter_upsert(dialect.name)
        nxt: dict[str, int] = {}
        for day, k in sorted(wanted.items()):
            nxt[day] = (await db.execute(statement, {"day": day, "k": k})).scalar_one() - k + 1
        numbers = []
        for day in days:
            numbers.append(f"MH-{day}-{nxt[day]:04d}")
            nxt[day] += 1
        return numbers

    # ------------------------------------------------------------------ 社区派单

    async def _candidates(
        self,
        session: AsyncSession,
        ticket: Ticket,
        category: Category,
        *,
        exclude: Collection[int] = (),
        avoid: Collection[int] = (),
    ) -> Sequence[Responder]:
        grab = ticket.dispatch_mode == DispatchMode.GRAB and ticket.level == Level.GRID
        wanted = category.offer_to if grab else 1
        return await routing.candidates(session, ticket, category, exclude=exclude, avoid=avoid, limit=wanted)

    async def _dispatch(
        self,
        session: AsyncSession,
        ticket: Ticket,
        category: Category,
        now: datetime,
        *,
        exclude: Collection[int] = (),
        avoid: Collection[int] = (),
        found: Sequence[Responder] | None = None,
    ) -> None:
        """Send a created ticket to the best responders of its level (`found`, when already looked up);
        tell staff when nobody can take it."""
        grab = ticket.dispatch_mode == DispatchMode.GRAB and ticket.level == Level.GRID
        if found is None:
            found = await self._candidates(session, ticket, category, exclude=exclude, avoid=avoid)
        if not found:
            for staff in await routing.staff_of(session, ticket, ticket.level):
                outbox.notify(
                    session, "needs_dispatch", "responder", staff.id, ticket, now, level=ticket.level
                )
            return
        for responder in found:
            responder.last_assigned_at = now
        if grab:
            ticket.assignee_id = None
            await apply(
                session,
                ticket,
                "dispatch",
                Status.DISPATCHED,
                actor=SYSTEM,
                now=now,
                mode="grab",
                offered=[r.id for r in found],
            )
            for responder in found:
                session.add(
                    Offer(
                        ticket_id=ticket.id, responder_id=responder.id, round=ticket.version, offered_at=now
                    )
                )
                outbox.notify(session, "offered", "responder", responder.id, ticket, now)
        else:
            ticket.assignee_id = found[0].id
            await apply(
                session,
                ticket,
                "dispatch",
                Status.DISPATCHED,
                actor=SYSTEM,
                now=now,
                mode="direct",
                assignee=found[0].id,
            )
            outbox.notify(session, "assigned", "responder", found[0].id, ticket, now)
        if ticket.first_dispatched_at is None:
            ticket.first_dispatched_at = now

    def _restart_clock(self, ticket: Ticket, category: Category, now: datetime, *, resolve: bool) -> None:
        """New responders get the full time to respond (and to resolve); deadlines never move backwards."""
        urgent = ticket.urgency == Urgency.URGENT
        ticket.respond_by = max(
            ticket.respond_by, self.calendar.deadline(now, category.respond_within, urgent=urgent)
        )
        if resolve:
            ticket.resolve_by = max(
                ticket.resolve_by, self.calendar.deadline(now, category.resolve_within, urgent=urgent)
            )

    async def _withdraw_offers(
        self, session: AsyncSession, ticket: Ticket, now: datetime, *, winner: int | None = None
    ) -> None:
        for offer in await routing.open_offers(session, ticket):
            if offer.responder_id == winner:
                offer.state = "won"
                continue
            offer.state = "lost" if winner else "withdrawn"
            outbox.notify(
                session, "taken" if winner else "withdrawn", "responder", offer.responder_id, ticket, now
            )

    async def _refusers(self, session: AsyncSession, ticket: Ticket) -> set[int]:
        """Responders who declined or returned this ticket: not asked again."""
        rows = await session.scalars(
            select(TicketEvent.actor).where(
                TicketEvent.ticket_id == ticket.id, TicketEvent.action.in_(("decline", "return"))
            )
        )
        return {int(actor.split(":")[1]) for actor in rows if actor.startswith("responder:")}

    async def _ticket(self, session: AsyncSession, number: str, *, lock: bool = False) -> Ticket:
        query = select(Ticket).where(Ticket.number == clean_text(number).upper())
        if lock:
            query = query.with_for_update()
        ticket = await session.scalar(query)
        if ticket is None:
            raise TicketNotFound(number=clean_text(number)[:32])
        return ticket

    async def _responder(self, session: AsyncSession, responder_id: int) -> Responder:
        responder = await session.get(Responder, responder_id)
        if responder is None or not responder.active:
            raise ResponderNotFound()
        return responder

    @staticmethod
    def _in_scope(responder: Responder, ticket: Ticket) -> bool:
        if responder.community_id is None:
            return responder.street_id == ticket.street_id
        return responder.community_id == ticket.community_id

    async def _staff(self, session: AsyncSession, staff_id: int, ticket: Ticket) -> Responder:
        staff = await self._responder(session, staff_id)
        if not Role(staff.role).is_staff or not self._in_scope(staff, ticket):
            raise NotAllowed("只有本社区(或街道)的工作人员可以派单和改派。")
        return staff

    async def dispatch(
        self, number: str, staff_id: int, responder_id: int, reason: str | None = None
    ) -> Ticket:
        """Staff send a waiting ticket to a responder by hand (人工派单)."""
        return await self._assign_by_hand(number, staff_id, responder_id, reason, action="dispatch")

    async def reassign(self, number: str, staff_id: int, responder_id: int, reason: str) -> Ticket:
        """Staff move a dispatched or accepted ticket to another responder (改派)."""
        return await self._assign_by_hand(number, staff_id, responder_id, _reason(reason), action="reassign")

    async def _assign_by_hand(
        self, number: str, staff_id: int, responder_id: int, reason: str | None, *, action: str
    ) -> Ticket:
        now = self.clock.now()
        async with self._work() as session:
            ticket = await self._ticket(session, number)
            staff = await self._staff(session, staff_id, ticket)
            target = await self._responder(session, responder_id)
            if not self._in_scope(target, ticket):
                raise NotAllowed("只能派给本社区(或街道)的工作人员和志愿者。")
            check(ticket, action)
            previous = ticket.assignee_id
            await self._withdraw_offers(session, ticket, now)
            ticket.assignee_id = target.id
            ticket.dispatch_mode = DispatchMode.DIRECT
            ticket.paused_at = None  # the new responder's clock runs
            target.last_assigned_at = now
            self._restart_clock(ticket, self.catalogue.get(ticket.category), now, resolve=False)
            await apply(
                session,
                ticket,
                action,
                Status.DISPATCHED,
                actor=Actor.responder(staff.id),
                now=now,
                assignee=target.id,
                reason=reason,
            )
            if ticket.first_dispatched_at is None:
                ticket.first_dispatched_at = now
            if previous and previous != target.id:
                outbox.notify(session, "withdrawn", "responder", previous, ticket, now)
            outbox.notify(session, "assigned", "responder", target.id, ticket, now)
            return ticket

    # ------------------------------------------------------------------ 党员接单

    async def accept(self, number: str, responder_id: int) -> Ticket:
        """接单. Race-safe: when many accept at once, exactly one wins; the rest get AlreadyTaken."""
        now = self.clock.now()
        try:
            async with unit_of_work(self.sessions) as session:
                ticket = await self._ticket(session, number)
                responder = await self._responder(session, responder_id)
                if not self._in_scope(responder, ticket):
                    raise NotAllowed("这张工单不属于您所在的社区。")
                if ticket.status == Status.ACCEPTED and ticket.assignee_id != responder.id:
                    raise AlreadyTaken(number=ticket.number)
                check(ticket, "accept")
                if ticket.assignee_id is not None and ticket.assignee_id != responder.id:
                    raise NotAllowed("这张工单已派给其他同志。")
                if ticket.assignee_id is None:
                    offer_states = set(
                        await session.scalars(
                            select(Offer.state).where(
                                Offer.ticket_id == ticket.id, Offer.responder_id == responder.id
                            )
                        )
                    )
                    if "open" not in offer_states:
                        # Read between a winner's commit and ours: the offer already says lost.
                        if "lost" in offer_states:
                            raise AlreadyTaken(number=ticket.number)
                        raise NotAllowed("这张工单没有派给您。")
                ticket.assignee_id = responder.id
                if ticket.first_accepted_at is None:
                    ticket.first_accepted_at = now
                    ticket.responded_in_time = now <= ticket.first_respond_by
                await apply(
                    session, ticket, "accept", Status.ACCEPTED, actor=Actor.responder(responder.id), now=now
                )
                await self._withdraw_offers(session, ticket, now, winner=responder.id)
                outbox.notify(
                    session,
                    "accepted",
                    "resident",
                    ticket.resident_id,
                    ticket,
                    now,
                    responder_name=responder.name,
                )
                return ticket
        except StaleDataError:
            raise AlreadyTaken(number=clean_text(number)[:32]) from None

    async def decline(self, number: str, responder_id: int, reason: str) -> Ticket:
        """不接: the ticket goes to the next responder; the decliner is not asked again."""
        reason = _reason(reason)
        now = self.clock.now()
        async with self._work() as session:
            ticket = await self._ticket(session, number)
            responder = await self._responder(session, responder_id)
            check(ticket, "decline")
            offer = await session.scalar(
                select(Offer).where(
                    Offer.ticket_id == ticket.id, Offer.responder_id == responder.id, Offer.state == "open"
                )
            )
            if ticket.assignee_id != responder.id and offer is None:
                raise NotAllowed("这张工单没有派给您。")
            actor = Actor.responder(responder.id)
            if offer is not None:
                offer.state = "declined"
                await session.flush()
                if await routing.open_offers(session, ticket):
                    await apply(
                        session, ticket, "decline", Status.DISPATCHED, actor=actor, now=now, reason=reason
                    )
                    return ticket
            ticket.assignee_id = None
            await apply(session, ticket, "decline", Status.CREATED, actor=actor, now=now, reason=reason)
            await self._redispatch(session, ticket, now)
            return ticket

    async def return_ticket(self, number: str, responder_id: int, reason: str) -> Ticket:
        """退回: an accepted ticket goes back for someone else; the resident is told why."""
        reason = _reason(reason)
        now = self.clock.now()
        async with self._work() as session:
            ticket = await self._ticket(session, number)
            responder = await self._own(session, ticket, responder_id)
            check(ticket, "return")
            ticket.assignee_id = None
            ticket.paused_at = None
            await apply(
                session,
                ticket,
                "return",
                Status.CREATED,
                actor=Actor.responder(responder.id),
                now=now,
                reason=reason,
            )
            outbox.notify(session, "returned", "resident", ticket.resident_id, ticket, now, reason=reason)
            await self._redispatch(session, ticket, now)
            return ticket

    async def _redispatch(
        self,
        session: AsyncSession,
        ticket: Ticket,
        now: datetime,
        *,
        resolve: bool = False,
        avoid: Collection[int] = (),
    ) -> None:
        category = self.catalogue.get(ticket.category)
        self._restart_clock(ticket, category, now, resolve=resolve)
        await self._dispatch(
            session, ticket, category, now, exclude=await self._refusers(session, ticket), avoid=avoid
        )

    async def _own(self, session: AsyncSession, ticket: Ticket, responder_id: int) -> Responder:
        responder = await self._responder(session, responder_id)
        if ticket.assignee_id != responder.id:
            raise NotAllowed("只有接单人可以处理这张工单。")
        return responder

    # ------------------------------------------------------------------ working it

    async def pause(self, number: str, responder_id: int, reason: str) -> Ticket:
        """Waiting on the resident (e.g. 约不到时间): the deadlines stop until resumed."""
        reason = _reason(reason)
        now = self.clock.now()
        async with self._work() as session:
            ticket = await self._ticket(session, number)
            responder = await self._own(session, ticket, responder_id)
            if ticket.paused_at is not None:
                raise IllegalTransition("计时已经暂停了。")
            ticket.paused_at = now
            await apply(
                session,
                ticket,
                "pause",
                Status.ACCEPTED,
                actor=Actor.responder(responder.id),
                now=now,
                reason=reason,
            )
            return ticket

    async def resume(self, number: str, actor: Actor) -> Ticket:
        """Deadlines move on by the time spent waiting (never backwards)."""
        now = self.clock.now()
        async with self._work() as session:
            ticket = await self._ticket(session, number)
            if actor.kind == "responder":
                await self._own(session, ticket, actor.id or 0)
            elif actor.kind == "resident" and actor.id != ticket.resident_id:
                raise TicketNotFound(number=number)
            if ticket.paused_at is None:
                raise IllegalTransition("计时没有暂停。")
            waited = max(timedelta(0), now - ticket.paused_at)
            ticket.respond_by += waited
            ticket.resolve_by += waited
            ticket.paused_at = None
            await apply(
                session,
                ticket,
                "resume",
                Status.ACCEPTED,
                actor=actor,
                now=now,
                waited_seconds=int(waited.total_seconds()),
            )
            return ticket

    async def add_note(self, number: str, responder_id: int, note: str) -> Ticket:
        text = self._validate_text(note)
        now = self.clock.now()
        async with self._work() as session:
            ticket = await self._ticket(session, number)
            responder = await self._responder(session, responder_id)
            if ticket.assignee_id != responder.id and not (
                Role(responder.role).is_staff and self._in_scope(responder, ticket)
            ):
                raise NotAllowed("只有接单人和本社区工作人员可以添加备注。")
            await apply(
                session,
                ticket,
                "note",
                Status(ticket.status),
                actor=Actor.responder(responder.id),
                now=now,
                note=text,
            )
            return ticket

    async def attach(self, resident_id: int, kind: str, reference: Mapping[str, Any]) -> Ticket | None:
        """A photo or location the resident sends: kept by reference (e.g. the channel's file id, never the
        file) on their latest open ticket. None when they have no open ticket."""
        now = self.clock.now()
        async with self._work() as session:
            ticket = await session.scalar(
                select(Ticket)
                .where(Ticket.resident_id == resident_id, OPEN_TICKET_SQL)
                .order_by(Ticket.created_at.desc(), Ticket.id.desc())
                .limit(1)
            )
            if ticket is None:
                return None
            await apply(
                session,
                ticket,
                "attach",
                Status(ticket.status),
                actor=Actor.resident(resident_id),
                now=now,
                kind=kind,
                **reference,
            )
            return ticket

    async def resolve(self, number: str, responder_id: int, note: str) -> Ticket:
        """办结: the responder reports it done; the resident is asked the three follow-up questions."""
        text = self._validate_text(note)
        now = self.clock.now()
        async with self._work() as session:
            ticket = await self._ticket(session, number)
            responder = await self._own(session, ticket, responder_id)
            check(ticket, "resolve")
            ticket.resolved_at = now
            ticket.resolution_note = text
            ticket.paused_at = None
            await apply(
                session,
                ticket,
                "resolve",
                Status.RESOLVED,
                actor=Actor.responder(responder.id),
                now=now,
                note=text,
            )
            outbox.notify(
                session, "rate", "resident", ticket.resident_id, ticket, now, responder_name=responder.name
            )
            return ticket

    # ------------------------------------------------------------------ 回访 / 评价

    async def rate(
        self,
        number: str,
        resident_id: int,
        *,
        contacted: bool,
        solved: bool,
        rating: Rating | str,
        comment: str | None = None,
    ) -> Ticket:
        """The resident's answer to 回访. 不满意 or not solved reopens and re-dispatches (二次派单)."""
        try:
            rating = Rating.parse(rating)
        except ValueError:
            raise ValidationError("请选择:满意、基本满意或不满意。") from None
        comment_text = clean_text(comment or "")[:1000] or None
        now = self.clock.now()
        async with self._work() as session:
            ticket = await self._ticket(session, number)
            if ticket.resident_id != resident_id:
                raise TicketNotFound(number=number)
            check(ticket, "rate")
            ticket.contacted, ticket.solved, ticket.rating = contacted, solved, rating
            ticket.rating_comment, ticket.rated_at = comment_text, now
            actor = Actor.resident(resident_id)
            if rating is Rating.UNSATISFIED or not solved:
                previous = ticket.assignee_id
                await apply(
                    session,
                    ticket,
                    "rate",
                    Status.RESOLVED,
                    actor=actor,
                    now=now,
                    rating=rating.value,
                    contacted=contacted,
                    solved=solved,
                )
                await self._reopen(session, ticket, now, actor, avoid=[previous] if previous else [])
            else:
                ticket.closed_at = now
                await apply(
                    session,
                    ticket,
                    "rate",
                    Status.CLOSED,
                    actor=actor,
                    now=now,
                    rating=rating.value,
                    contacted=contacted,
                    solved=solved,
                )
                earned = points.award(session, ticket, rating, now, f"rated_{rating.value}")
                if ticket.assignee_id is not None:
                    outbox.notify(
                        session,
                        "rated",
                        "responder",
                        ticket.assignee_id,
                        ticket,
                        now,
                        rating=rating.value,
                        points=earned,
                    )
            return ticket

    async def _reopen(
        self, session: AsyncSession, ticket: Ticket, now: datetime, actor: Actor, *, avoid: Collection[int]
    ) -> None:
        ticket.reopen_count += 1
        ticket.assignee_id = None
        ticket.resolved_at = None
        ticket.closed_at = None
        await apply(session, ticket, "reopen", Status.CREATED, actor=actor, now=now)
        await self._redispatch(session, ticket, now, resolve=True, avoid=avoid)

    async def cancel(self, number: str, resident_id: int, reason: str | None = None) -> Ticket:
        """The resident withdraws the request; only before anybody has accepted it."""
        now = self.clock.now()
        async with self._work() as session:
            ticket = await self._ticket(session, number)
            if ticket.resident_id != resident_id:
                raise TicketNotFound(number=number)
            if ticket.status == Status.ACCEPTED:
                raise IllegalTransition("工作人员已经接单在处理了,不能撤销。如不再需要,请直接告诉接单人。")
            check(ticket, "cancel")
            await self._withdraw_offers(session, ticket, now)
            if ticket.assignee_id is not None:
                outbox.notify(session, "withdrawn", "responder", ticket.assignee_id, ticket, now)
            await apply(
                session,
                ticket,
                "cancel",
                Status.CANCELLED,
                actor=Actor.resident(resident_id),
                now=now,
                reason=clean_text(reason or "")[:MAX_REASON] or None,
            )
            return ticket

    async def auto_close(self, limit: int = 200) -> list[str]:
        """Close tickets the resident did not rate within the policy's days (自动结案)."""
        now = self.clock.now()
        async with self._work() as session:
            due = (
                await session.scalars(
                    select(Ticket)
                    .where(
                        Ticket.status == Status.RESOLVED,
                        Ticket.resolved_at < now - self.policy.auto_close_after,
                    )
                    .order_by(Ticket.resolved_at)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for ticket in due:
                ticket.closed_at = now
                await apply(session, ticket, "auto_close", Status.CLOSED, actor=SYSTEM, now=now)
                # Closed without an answer: an earlier round's rating is not this round's.
                points.award(session, ticket, None, now, "auto_closed")
            return [t.number for t in due]

    # ---------------------------------------------------------- escalation (grid → community → street)

    async def escalate_overdue(self, batch: int = 100) -> list[str]:
        """One sweep: every open ticket past its respond-by or resolve-by goes up one level and is
        re-dispatched there. Rows are claimed with SKIP LOCKED, so several sweepers can run at once;
        all state is in the database, so a restarted sweeper simply carries on."""
        escalated: list[str] = []
        while True:
            now = self.clock.now()
            async with self._work() as session:
                overdue = (
                    await session.scalars(
                        select(Ticket)
                        .where(
                            Ticket.level < Level.STREET,
                            Ticket.paused_at.is_(None),
                            or_(
                                and_(
                                    Ticket.status.in_((Status.CREATED, Status.DISPATCHED)),
                                    Ticket.respond_by < now,
                                ),
                                and_(Ticket.status == Status.ACCEPTED, Ticket.resolve_by < now),
                            ),
                        )
                        .order_by(Ticket.id)
                        .limit(batch)
                        .with_for_update(skip_locked=True)
                    )
                ).all()
                for ticket in overdue:
                    await self._escalate(session, ticket, now)
                escalated.extend(t.number for t in overdue)
            if len(overdue) < batch:
                return escalated

    async def _escalate(self, session: AsyncSession, ticket: Ticket, now: datetime) -> None:
        late_on = "respond_by" if ticket.status != Status.ACCEPTED else "resolve_by"
        previous = ticket.assignee_id
        await self._withdraw_offers(session, ticket, now)
        ticket.level += 1
        ticket.assignee_id = None
        await apply(
            session,
            ticket,
            "escalate",
            Status.CREATED,
            actor=SYSTEM,
            now=now,
            reason=f"{late_on} passed",
            level=ticket.level,
            previous_assignee=previous,
        )
        if previous is not None:
            outbox.notify(session, "withdrawn", "responder", previous, ticket, now, reason="overdue")
        for staff in await routing.staff_of(session, ticket, ticket.level):
            outbox.notify(
                session, "escalated", "responder", staff.id, ticket, now, level=ticket.level, reason=late_on
            )
        await self._redispatch(session, ticket, now, resolve=True)

    # ------------------------------------------------------------------ reading

    async def ticket(self, number: str, viewer: Actor) -> Ticket:
        """One ticket, if the viewer may see it: a resident only their own (others' look not found)."""
        async with self._work() as session:
            ticket = await self._ticket(session, number)
            await self._check_viewer(session, ticket, viewer)
            return ticket

    async def _check_viewer(self, session: AsyncSession, ticket: Ticket, viewer: Actor) -> None:
        if viewer.kind == "resident" and ticket.resident_id != viewer.id:
            raise TicketNotFound(number=ticket.number)
        if viewer.kind == "responder":
            responder = await self._responder(session, viewer.id or 0)
            if not self._in_scope(responder, ticket):
                raise TicketNotFound(number=ticket.number)

    async def history(self, number: str, viewer: Actor) -> Sequence[TicketEvent]:
        async with self._work() as session:
            ticket = await self._ticket(session, number)
            await self._check_viewer(session, ticket, viewer)
            return (
                await session.scalars(
                    select(TicketEvent).where(TicketEvent.ticket_id == ticket.id).order_by(TicketEvent.seq)
                )
            ).all()

    async def tickets_of_resident(self, resident_id: int, limit: int = 10) -> Sequence[Ticket]:
        async with self._work() as session:
            return (
                await session.scalars(
                    select(Ticket)
                    .where(Ticket.resident_id == resident_id)
                    .order_by(Ticket.created_at.desc(), Ticket.id.desc())
                    .limit(limit)
                )
            ).all()

    async def tickets_of_responder(self, responder_id: int, *, open_only: bool = True) -> Sequence[Ticket]:
        async with self._work() as session:
            query = select(Ticket).where(Ticket.assignee_id == responder_id)
            if open_only:
                query = query.where(Ticket.status.in_((Status.DISPATCHED, Status.ACCEPTED)))
            return (await session.scalars(query.order_by(Ticket.resolve_by))).all()

    async def queue(self, staff_id: int, limit: int = 50) -> Sequence[Ticket]:
        """The staff queue: their community's (or street's) open tickets, most urgent deadline first."""
        async with self._work() as session:
            staff = await self._responder(session, staff_id)
            if not Role(staff.role).is_staff:
                raise NotAllowed("只有社区工作人员可以查看工单队列。")
            query = select(Ticket).where(OPEN_TICKET_SQL)
            if staff.community_id is None:
                query = query.where(Ticket.street_id == staff.street_id)
            else:
                query = query.where(Ticket.community_id == staff.community_id)
            return (await session.scalars(query.order_by(Ticket.resolve_by, Ticket.id).limit(limit))).all()

    async def set_on_duty(self, responder_id: int, on_duty: bool) -> Responder:
        """在岗 / 休息: off-duty responders get no new offers or assignments."""
        async with self._work() as session:
            responder = await self._responder(session, responder_id)
            responder.on_duty = on_duty
            return responder

    async def assignable(self, number: str, staff_id: int) -> Sequence[Responder]:
        """Whom staff may dispatch or reassign the ticket to: active responders of its community (street
        staff: of its street), by name."""
        async with self._work() as session:
            ticket = await self._ticket(session, number)
            await self._staff(session, staff_id, ticket)
            query = select(Responder).where(Responder.active, Responder.street_id == ticket.street_id)
            query = query.where(
                or_(Responder.community_id == ticket.community_id, Responder.community_id.is_(None))
            )
            return (await session.scalars(query.order_by(Responder.role, Responder.name))).all()

    async def place_of(self, ticket: Ticket) -> str:
        """Where the ticket is, as responders read it: 社区 · 网格."""
        async with self._work() as session:
            community = await session.get_one(Community, ticket.community_id)
            grid = await session.get(Grid, ticket.grid_id) if ticket.grid_id else None
        return f"{community.name} · {grid.name}" if grid else community.name

    async def community_figures(self, staff_id: int, period: metrics.Period) -> metrics.LoopFigures:
        """民呼我应 figures of the staff member's community (street staff: their street) for the period."""
        async with self._work() as session:
            staff = await self._responder(session, staff_id)
            if not Role(staff.role).is_staff:
                raise NotAllowed("只有社区工作人员可以查看统计。")
            where = (
                metrics.Slice(street_id=staff.street_id)
                if staff.community_id is None
                else metrics.Slice(community_id=staff.community_id)
            )
            return await metrics.figures(
                session, period, now=self.clock.now(), where=where, catalogue=self.catalogue
            )

    async def points_of(self, responder_id: int) -> tuple[int, Sequence[Any]]:
        async with self._work() as session:
            await self._responder(session, responder_id)
            return await points.balance(session, responder_id), await points.history(session, responder_id)
