"""Step 2 of the loop, 社区派单: who gets a ticket.

The decision is made once, by `decide` (and `decide_handoff` for 转人工, `decide_emergency` for 紧急求助): pure
functions over plain rows (responders, their loads, who covers the grid) that say the mode, who is chosen, which
staff are told that nobody could be found (or, for an emergency, who else is alerted), the dispatch event's data
and the notifications. Two write paths carry a `Decision` out: `Dispatching._dispatch` through the ORM
(re-dispatch after a decline, a return, an escalation or a reopen; hand-off; emergency), and the batched create
path (`tickets.create`, Core rows). Staff's dispatch and reassignment by hand, and withdrawing offers, live here
too.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tickets import outbox, routing
from tickets.actors import SYSTEM, Actor
from tickets.catalogue import Category, DispatchMode, Role
from tickets.core import ServiceCore, reason_given
from tickets.errors import NotAllowed
from tickets.models import Level, Offer, OfferState, Status, Ticket, TicketEvent, Urgency
from tickets.outbox import Kind, Recipient
from tickets.transitions import Action, apply, check


class Mode(StrEnum):
    GRAB = "grab"  # 抢单: offered to several, the first to accept wins
    DIRECT = "direct"  # assigned to one
    HANDOFF = "handoff"  # 转人工: assigned to the least busy community staff member
    EMERGENCY = "emergency"  # 紧急求助: assigned to a community staff member, everyone nearby alerted


@dataclass(frozen=True, slots=True)
class Decision:
    """Who gets the ticket. `chosen` is empty when nobody can take it; then `told` are the staff who hear
    that it waits for dispatch by hand. For an emergency with someone chosen, `told` are the others alerted
    at once (the grid workers and the other community staff)."""

    mode: Mode
    chosen: tuple[int, ...]
    told: tuple[int, ...]
    level: int

    @property
    def status(self) -> Status:
        return Status.DISPATCHED if self.chosen else Status.CREATED

    @property
    def assignee(self) -> int | None:
        """The one responder it is assigned to; None for offers (抢单) and when nobody was found."""
        return self.chosen[0] if self.chosen and self.mode is not Mode.GRAB else None

    def event_data(self) -> dict[str, Any]:
        if self.mode is Mode.GRAB:
            return {"mode": self.mode.value, "offered": list(self.chosen)}
        return {"mode": self.mode.value, "assignee": self.assignee}

    def notes(self) -> list[tuple[Kind, int, dict[str, Any]]]:
        """(kind, responder id, extra payload) of each notification the decision causes."""
        if not self.chosen:
            return [(Kind.NEEDS_DISPATCH, staff, {"level": self.level}) for staff in self.told]
        if self.mode is Mode.GRAB:
            return [(Kind.OFFERED, responder, {}) for responder in self.chosen]
        if self.mode is Mode.EMERGENCY:
            alerts = [(Kind.EMERGENCY, r, {"assignee": self.chosen[0]}) for r in self.told]
            return [(Kind.ASSIGNED, self.chosen[0], {"emergency": True}), *alerts]
        extra = {"handoff": True} if self.mode is Mode.HANDOFF else {}
        return [(Kind.ASSIGNED, self.chosen[0], extra)]

    def offers(self, ticket_id: int, round_: int, now: datetime) -> list[dict[str, Any]]:
        """The 抢单 offers' rows; `round_` is the ticket version the dispatch left (its event's seq)."""
        if self.mode is not Mode.GRAB:
            return []
        return [
            {
                "ticket_id": ticket_id,
                "responder_id": r,
                "round": round_,
                "offered_at": now,
                "state": OfferState.OPEN,
            }
            for r in self.chosen
        ]


def decide(
    category: Category,
    dispatch_mode: DispatchMode,
    level: int,
    responders: Iterable[routing.Pooled],
    loads: routing.Loads,
    *,
    in_grid: Collection[int] = (),
    exclude: Collection[int] = (),
    avoid: Collection[int] = (),
) -> Decision:
    """The dispatch decision for a ticket at `level`, over the responders of its area (`routing.area` or
    `routing.pool`): offered to the category's `offer_to` best (抢单, grid level only) or assigned to the
    best one (routing.rank). When nobody fits, the area's staff of that level are told."""
    grab = dispatch_mode == DispatchMode.GRAB and level == Level.GRID
    responders = list(responders)
    found = routing.rank(
        responders,
        loads,
        category,
        level,
        in_grid=in_grid,
        exclude=exclude,
        avoid=avoid,
        limit=category.offer_to if grab else 1,
    )
    staff_role = routing.staff_role(level)
    told = () if found else tuple(r.id for r in responders if r.role == staff_role)
    return Decision(Mode.GRAB if grab else Mode.DIRECT, tuple(r.id for r in found), told, level)


def decide_handoff(
    staff: Sequence[routing.Pooled], loads: routing.Loads, street_staff: Sequence[int], level: int
) -> Decision:
    """转人工: the least busy of the community's staff on duty (of all of them when none is on duty:
    someone must hear the resident), by id on a tie; without staff on record the street's are told."""
    on_duty = [s for s in staff if s.on_duty] or list(staff)
    if not on_duty:
        return Decision(Mode.HANDOFF, (), tuple(street_staff), level)
    chosen = min(on_duty, key=lambda s: (loads.get(s.id, 0), s.id))
    return Decision(Mode.HANDOFF, (chosen.id,), (), level)


def decide_emergency(
    responders: Sequence[routing.Pooled],
    loads: routing.Loads,
    in_grid: Collection[int],
    street_staff: Sequence[int],
    level: int,
) -> Decision:
    """紧急求助: assigned at once to the least busy community staff member on duty (of all staff when none is
    on duty), by id on a tie; the grid workers of the resident's grid (of the community when the grid is not
    known or has none) and the other community staff are alerted at the same moment, the ones on duty when
    there are any. Without community staff a grid worker takes it; with nobody at all the street's staff are
    told that it waits."""

    def on_duty_first(people: Sequence[routing.Pooled]) -> list[routing.Pooled]:
        return [p for p in people if p.on_duty] or list(people)

    staff = on_duty_first([r for r in responders if r.role == Role.COMMUNITY_STAFF])
    workers = [r for r in responders if r.role == Role.GRID_WORKER]
    workers = on_duty_first([w for w in workers if w.id in in_grid] or workers)
    candidates = staff or workers
    if not candidates:
        return Decision(Mode.EMERGENCY, (), tuple(street_staff), level)
    chosen = min(candidates, key=lambda r: (loads.get(r.id, 0), r.id))
    told = sorted({r.id for r in (*staff, *workers)} - {chosen.id})
    return Decision(Mode.EMERGENCY, (chosen.id,), tuple(told), level)


class Dispatching(ServiceCore):
    async def _dispatch(
        self,
        session: AsyncSession,
        ticket: Ticket,
        category: Category,
        now: datetime,
        *,
        exclude: Collection[int] = (),
        avoid: Collection[int] = (),
    ) -> None:
        """Send a created ticket to the best responders of its level; tell staff when nobody can take it."""
        responders, loads = await routing.area(session, ticket)
        in_grid = await routing.grid_members(session, ticket.grid_id, [r.id for r in responders])
        decision = decide(
            category,
            DispatchMode(ticket.dispatch_mode),
            ticket.level,
            responders,
            loads,
            in_grid=in_grid,
            exclude=exclude,
            avoid=avoid,
        )
        await self._carry_out(session, ticket, decision, now)

    async def _carry_out(
        self, session: AsyncSession, ticket: Ticket, decision: Decision, now: datetime
    ) -> None:
        """The ORM write path of a decision (the batched create path writes the same as Core rows)."""
        if decision.chosen:
            ticket.assignee_id = decision.assignee
            await apply(
                session,
                ticket,
                Action.DISPATCH,
                decision.status,
                actor=SYSTEM,
                now=now,
                **decision.event_data(),
            )
            session.add_all(Offer(**row) for row in decision.offers(ticket.id, ticket.version, now))
            if ticket.first_dispatched_at is None:
                ticket.first_dispatched_at = now
            await session.execute(
                routing.GIVEN_WORK, [{"responder": r, "at": now} for r in sorted(decision.chosen)]
            )
        for kind, responder, extra in decision.notes():
            outbox.notify(session, kind, Recipient.RESPONDER, responder, ticket, now, **extra)

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
                offer.state = OfferState.WON
                continue
            offer.state = OfferState.LOST if winner else OfferState.WITHDRAWN
            kind = Kind.TAKEN if winner else Kind.WITHDRAWN
            outbox.notify(session, kind, Recipient.RESPONDER, offer.responder_id, ticket, now)

    async def _refusers(self, session: AsyncSession, ticket: Ticket) -> set[int]:
        """Responders who declined or returned this ticket: not asked again."""
        actors = await session.scalars(
            select(TicketEvent.actor).where(
                TicketEvent.ticket_id == ticket.id, TicketEvent.action.in_((Action.DECLINE, Action.RETURN))
            )
        )
        return {a.id for a in map(Actor.parse, actors) if a.kind == "responder" and a.id is not None}

    # ------------------------------------------------------------------ by hand (人工派单, 改派)

    async def dispatch(
        self, number: str, staff_id: int, responder_id: int, reason: str | None = None
    ) -> Ticket:
        """Staff send a waiting ticket to a responder by hand (人工派单)."""
        return await self._assign_by_hand(number, staff_id, responder_id, reason, action=Action.DISPATCH)

    async def reassign(self, number: str, staff_id: int, responder_id: int, reason: str) -> Ticket:
        """Staff move a dispatched or accepted ticket to another responder (改派)."""
        return await self._assign_by_hand(
            number, staff_id, responder_id, reason_given(reason), action=Action.REASSIGN
        )

    async def _assign_by_hand(
        self, number: str, staff_id: int, responder_id: int, reason: str | None, *, action: Action
    ) -> Ticket:
        now = self.clock.now()
        async with self._work() as session:
            ticket = await self._ticket(session, number)
            staff = await self._staff(session, staff_id, ticket)
            target = await self._responder(session, responder_id)
            if not target.covers(ticket):
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
                outbox.notify(session, Kind.WITHDRAWN, Recipient.RESPONDER, previous, ticket, now)
            outbox.notify(session, Kind.ASSIGNED, Recipient.RESPONDER, target.id, ticket, now)
            return ticket
