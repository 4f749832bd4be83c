"""Step 1 of the loop, 群众点单, as residents meet it: who they are (`resident_for`, `remember_resident`), the
resident-facing way in (`intake`: a near-identical request joins the open ticket, too many in an hour are
refused, the rest become tickets through `tickets.create`), 转人工 (`handoff`: a ticket for the community
staff with the conversation so far), and 紧急求助 (`emergency`: after the emergency numbers, an urgent ticket
assigned to the community staff at once, the grid workers alerted)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from rapidfuzz import fuzz
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tickets import orgchart, outbox, routing
from tickets.actors import Actor
from tickets.catalogue import Category, DispatchMode, Role
from tickets.create import Creating, NewTicket
from tickets.dispatch import Dispatching, decide_emergency, decide_handoff
from tickets.errors import TooManyTickets, ValidationError
from tickets.models import Community, Level, Resident, Status, Ticket, Urgency, split_channel_id
from tickets.outbox import Kind, Recipient
from tickets.privacy import clean_text, normalize_phone, scrub
from tickets.transitions import Action, apply, record_creation

DUPLICATE_SIMILARITY = 85  # rapidfuzz ratio (0-100) above which two requests are the same matter
EMERGENCY_WINDOW = timedelta(hours=1)  # a second 紧急求助 within it joins the resident's open one


@dataclass(frozen=True)
class Intake:
    """What became of a request: a new ticket, or the resident's open ticket it duplicates."""

    ticket: Ticket
    duplicate: bool = False


def _open_requests(resident_id: int, category: str, since: datetime) -> Select[Ticket]:
    """The resident's open tickets of a category made since `since`, newest first: what a repeat joins."""
    return (
        select(Ticket)
        .where(
            Ticket.resident_id == resident_id,
            Ticket.category == category,
            Ticket.status.in_([s for s in Status if s.is_open]),
            Ticket.created_at >= since,
        )
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
    )


def _fold(text: str) -> str:
    """Text as compared for duplicates: no whitespace or punctuation, lower case."""
    return "".join(ch for ch in text.lower() if ch.isalnum())


class Intaking(Creating, Dispatching):
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

    async def intake(self, request: NewTicket) -> Intake:
        """The resident-facing way in: a near-identical request (same resident and category, open ticket,
        within the policy's window) is linked to the open ticket, its text kept as a `link_duplicate`
        event; beyond the hourly limit TooManyTickets is raised; otherwise a new ticket is created."""
        text = self._validate_text(request.text)
        now = self.clock.now()
        self._received(request.received_at, now)  # checked before a duplicate skips creating
        window, limit = self.policy.duplicate_window, self.policy.max_tickets_per_hour
        if window is None and limit is None:
            return Intake(await self.create_ticket(request))
        recent = 0
        async with self._work() as session:  # both checks in one short transaction
            if window is not None:
                candidates = (
                    await session.scalars(_open_requests(request.resident_id, request.category, now - window))
                ).all()
                for ticket in candidates:
                    if fuzz.ratio(_fold(ticket.text), _fold(text)) >= DUPLICATE_SIMILARITY:
                        await apply(
                            session,
                            ticket,
                            Action.LINK_DUPLICATE,
                            actor=Actor.resident(request.resident_id),
                            now=now,
                            text=text,
                        )
                        if request.announce:
                            outbox.notify(
                                session,
                                Kind.REGISTERED,
                                Recipient.RESIDENT,
                                request.resident_id,
                                ticket,
                                now,
                                duplicate=True,
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

    async def handoff(
        self,
        resident_id: int,
        transcript: str,
        category: str | None = None,
        *,
        received_at: datetime | None = None,
        announce: bool = False,
    ) -> Ticket:
        """转人工: a ticket for the community staff with the conversation so far (phones and ID numbers
        masked), assigned to the least busy staff member of the resident's community (`decide_handoff`);
        when the community has no staff on record it waits for dispatch and the street's staff are told.
        `received_at` and `announce` as for NewTicket (a hand-off saved while the database was away)."""
        text = self._validate_text(scrub(clean_text(transcript))[-self.policy.max_text :])
        category_row = self.catalogue.get(category or "social_assistance")
        now = self.clock.now()
        created = self._received(received_at, now)
        async with self._work() as session:
            resident = await self._resident(session, resident_id)
            ticket = await self._staff_ticket(session, resident, category_row, text, "human_handoff", created)
            # Reads first: the day's number locks its counter row until commit, and every create of every
            # process needs that row.
            responders, loads = await routing.area(session, ticket)
            staff = [r for r in responders if r.role == Role.COMMUNITY_STAFF]
            street = [] if staff else await routing.staff_of(session, ticket, Level.STREET)
            decision = decide_handoff(staff, loads, [s.id for s in street], ticket.level)
            ticket.number = await self._next_number(session, created)
            await record_creation(session, ticket, actor=Actor.resident(resident.id), now=created)
            await self._carry_out(session, ticket, decision, now)
            if announce:
                outbox.notify(
                    session, Kind.REGISTERED, Recipient.RESIDENT, resident.id, ticket, now, handoff=True
                )
            return ticket

    async def emergency(self, resident_id: int, text: str, kind: str | None = None) -> Intake:
        """紧急求助, asked for after the emergency numbers were given: an urgent ticket in the catalogue's
        emergency category (the plain clock, minutes to respond), its text headed by the kind of danger,
        assigned at once to the least busy community staff member and alerted to the grid workers and the
        other staff (`decide_emergency`). No hourly limit; a second call within EMERGENCY_WINDOW while the
        resident's emergency ticket is open is added to it (`duplicate`), not a second ticket."""
        guide = self.catalogue.emergencies
        category_row = self.catalogue.get(guide.category if guide else "emergency")
        label = guide.kind(kind).name if guide else "紧急情况"
        body = self._validate_text(f"【{label}】" + scrub(clean_text(text))[: self.policy.max_text - 20])
        now = self.clock.now()
        async with self._work() as session:
            resident = await self._resident(session, resident_id)
            earlier = await session.scalar(
                _open_requests(resident.id, category_row.code, now - EMERGENCY_WINDOW).limit(1)
            )
            if earlier is not None:
                await apply(
                    session,
                    earlier,
                    Action.LINK_DUPLICATE,
                    actor=Actor.resident(resident.id),
                    now=now,
                    text=body,
                )
                return Intake(earlier, duplicate=True)
            ticket = await self._staff_ticket(
                session, resident, category_row, body, "emergency", now, urgency=Urgency.URGENT
            )
            responders, loads = await routing.area(session, ticket)
            in_grid = await routing.grid_members(session, ticket.grid_id, [r.id for r in responders])
            anyone = any(r.role in (Role.COMMUNITY_STAFF, Role.GRID_WORKER) for r in responders)
            street = [] if anyone else await routing.staff_of(session, ticket, Level.STREET)
            decision = decide_emergency(responders, loads, in_grid, [s.id for s in street], ticket.level)
            ticket.number = await self._next_number(session, now)
            await record_creation(session, ticket, actor=Actor.resident(resident.id), now=now)
            await self._carry_out(session, ticket, decision, now)
            return Intake(ticket)

    async def _staff_ticket(
        self,
        session: AsyncSession,
        resident: Resident,
        category: Category,
        text: str,
        intent: str,
        now: datetime,
        *,
        urgency: Urgency = Urgency.NORMAL,
    ) -> Ticket:
        """A ticket the resident asked the community staff for directly (转人工, 紧急求助), in the resident's
        community and grid, not yet numbered or stored."""
        if resident.community_id is None:
            raise ValidationError("请先告诉我们您住在哪个社区,方便安排社区工作人员联系您。")
        community = await session.get_one(Community, resident.community_id)
        urgent = urgency == Urgency.URGENT
        respond_by = self.calendar.deadline(now, category.respond_within, urgent=urgent)
        return Ticket(
            number="",  # taken last: the day's number locks its counter row until commit
            resident_id=resident.id,
            category=category.code,
            text=text,
            intent=intent,
            street_id=community.street_id,
            community_id=community.id,
            grid_id=resident.grid_id,
            address=resident.address,
            contact_phone=resident.phone,
            urgency=urgency,
            channel=split_channel_id(resident.channel_id)[0],
            status=Status.CREATED,
            dispatch_mode=DispatchMode.DIRECT,
            level=Level.GRID,
            created_at=now,
            respond_by=respond_by,
            first_respond_by=respond_by,
            resolve_by=self.calendar.deadline(now, category.resolve_within, urgent=urgent),
        )
