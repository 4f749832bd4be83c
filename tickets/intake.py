"""Step 1 of the loop, 群众点单, as residents meet it: who they are (`resident_for`, `remember_resident`), the
resident-facing way in (`intake`: a near-identical request joins the open ticket, too many in an hour are
refused, the rest become tickets through `tickets.create`), and 转人工 (`handoff`: a ticket for the community
staff with the conversation so far)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from rapidfuzz import fuzz
from sqlalchemy import func, select

from tickets import orgchart, outbox, routing
from tickets.actors import Actor
from tickets.catalogue import DispatchMode, Role
from tickets.create import Creating, NewTicket
from tickets.dispatch import Dispatching, decide_handoff
from tickets.errors import TooManyTickets, ValidationError
from tickets.models import Community, Level, Resident, Status, Ticket, Urgency, split_channel_id
from tickets.outbox import Kind, Recipient
from tickets.privacy import clean_text, normalize_phone, scrub
from tickets.transitions import Action, apply, record_creation

DUPLICATE_SIMILARITY = 85  # rapidfuzz ratio (0-100) above which two requests are the same matter


@dataclass(frozen=True)
class Intake:
    """What became of a request: a new ticket, or the resident's open ticket it duplicates."""

    ticket: Ticket
    duplicate: bool = False


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
                    await session.scalars(
                        select(Ticket)
                        .where(
                            Ticket.resident_id == request.resident_id,
                            Ticket.category == request.category,
                            Ticket.status.in_([s for s in Status if s.is_open]),
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
            if resident.community_id is None:
                raise ValidationError("请先告诉我们您住在哪个社区,方便安排社区工作人员联系您。")
            community = await session.get_one(Community, resident.community_id)
            respond_by = self.calendar.deadline(created, category_row.respond_within)
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
                channel=split_channel_id(resident.channel_id)[0],
                status=Status.CREATED,
                dispatch_mode=DispatchMode.DIRECT,
                level=Level.GRID,
                created_at=created,
                respond_by=respond_by,
                first_respond_by=respond_by,
                resolve_by=self.calendar.deadline(created, category_row.resolve_within),
            )
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
