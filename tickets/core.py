"""What every step of the loop shares: the service's dependencies (sessions, clock, catalogue, working
calendar, policy), the unit of work, and the lookups that check who is asking. The steps themselves live in
their own modules (intake, create, dispatch, work, followup, escalation, queries) and are put together as
`tickets.service.TicketService`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from tickets import orgchart
from tickets.calendar import WorkCalendar
from tickets.catalogue import Catalogue, Role
from tickets.clock import Clock, SystemClock
from tickets.db import unit_of_work
from tickets.errors import (
    ConcurrentChange,
    EmptyText,
    NotAllowed,
    ReasonRequired,
    ResponderNotFound,
    TextTooLong,
    TicketNotFound,
)
from tickets.models import Resident, Responder, Ticket
from tickets.privacy import KEEP_CONTACT_DAYS, clean_text

MAX_TEXT = 4000
MAX_REASON = 500


@dataclass(frozen=True)
class Policy:
    max_text: int = MAX_TEXT
    auto_close_after: timedelta = timedelta(days=7)
    # An ended ticket's phone and address are erased this long after it ended (tickets.retention).
    keep_contact_for: timedelta = timedelta(days=KEEP_CONTACT_DAYS)
    # Off in the domain (None); the app turns them on (app.settings): intake() refuses a resident's
    # ticket beyond this many per hour, and links a near-identical request to the resident's open ticket.
    max_tickets_per_hour: int | None = None
    duplicate_window: timedelta | None = None


def reason_given(reason: str | None) -> str:
    """A reason (退回, 不接, 改派, 暂停) is required and kept short."""
    text = clean_text(reason or "")
    if not text:
        raise ReasonRequired()
    return text[:MAX_REASON]


class ServiceCore:
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

    @asynccontextmanager
    async def _work(self) -> AsyncIterator[AsyncSession]:
        """A unit of work; a lost optimistic-lock race becomes a domain error."""
        try:
            async with unit_of_work(self.sessions) as session:
                yield session
        except StaleDataError:
            raise ConcurrentChange() from None

    async def _org(self, session: AsyncSession | AsyncConnection, version: str | None) -> orgchart.OrgChart:
        """The cached org chart, reloaded in this session when `version` (the database's token, read by
        the caller) says it changed, or when it is older than orgchart.MAX_AGE."""
        now = self.clock.now()
        chart = self._chart
        if chart is None or chart.stale(version, now):
            chart = self._chart = await orgchart.load(session, version, now)
        return chart

    def _validate_text(self, text: str | None) -> str:
        cleaned = clean_text(text or "")
        if not cleaned:
            raise EmptyText()
        if len(cleaned) > self.policy.max_text:
            raise TextTooLong(limit=self.policy.max_text)
        return cleaned

    # ------------------------------------------------------------------ who is asking

    async def _ticket(self, session: AsyncSession, number: str) -> Ticket:
        ticket = await session.scalar(select(Ticket).where(Ticket.number == clean_text(number).upper()))
        if ticket is None:
            raise TicketNotFound(number=clean_text(number)[:32])
        return ticket

    async def _resident(self, session: AsyncSession, resident_id: int) -> Resident:
        resident = await session.get(Resident, resident_id)
        if resident is None:
            raise NotAllowed("请先和民呼助手打个招呼,我们才能为您登记。")
        return resident

    async def _own_request(self, session: AsyncSession, number: str, resident_id: int) -> Ticket:
        """The resident's own ticket; another resident's looks not found (no hint that it exists)."""
        ticket = await self._ticket(session, number)
        if ticket.resident_id != resident_id:
            raise TicketNotFound(number=clean_text(number)[:32])
        return ticket

    async def _responder(self, session: AsyncSession, responder_id: int) -> Responder:
        responder = await session.get(Responder, responder_id)
        if responder is None or not responder.active:
            raise ResponderNotFound()
        return responder

    async def _staff(self, session: AsyncSession, staff_id: int, ticket: Ticket) -> Responder:
        staff = await self._responder(session, staff_id)
        if not Role(staff.role).is_staff or not staff.covers(ticket):
            raise NotAllowed("只有本社区(或街道)的工作人员可以派单和改派。")
        return staff

    async def _own(self, session: AsyncSession, ticket: Ticket, responder_id: int) -> Responder:
        responder = await self._responder(session, responder_id)
        if ticket.assignee_id != responder.id:
            raise NotAllowed("只有接单人可以处理这张工单。")
        return responder
