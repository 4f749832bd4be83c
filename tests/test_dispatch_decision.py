"""The dispatch decision is one pure function over plain rows (tickets.dispatch.decide), shared by the
one-ticket path and the batched create path; and the state machine refuses a move to the wrong state."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tickets.catalogue import Catalogue, DispatchMode, Role
from tickets.dispatch import Mode, decide, decide_handoff
from tickets.models import Level, Status, Ticket
from tickets.outbox import Kind
from tickets.routing import Pooled
from tickets.transitions import TRANSITIONS, Action, apply

CATALOGUE = Catalogue.load()


def person(
    id_: int, role: Role, *, on_duty: bool = True, capacity: int = 5, last: int | None = None
) -> Pooled:
    given = datetime(2026, 11, 1, last, tzinfo=UTC) if last is not None else None
    return Pooled(id_, role.value, 1, on_duty, capacity, [], given)


VOLUNTEERS = [person(i, Role.PARTY_VOLUNTEER, last=i) for i in (11, 12, 13, 14)]
STAFF = [person(2, Role.COMMUNITY_STAFF), person(3, Role.COMMUNITY_STAFF, on_duty=False)]


def test_a_grab_category_is_offered_to_its_best_few_in_the_grid_first() -> None:
    eldercare = CATALOGUE.get("eldercare")  # grab, offer_to 3
    decision = decide(eldercare, DispatchMode.GRAB, Level.GRID, VOLUNTEERS + STAFF, {11: 0}, in_grid={14})
    assert decision.mode is Mode.GRAB and decision.status is Status.DISPATCHED
    assert decision.chosen == (14, 11, 12)  # the grid's own first, then longest since given work
    assert decision.assignee is None
    assert decision.event_data() == {"mode": "grab", "offered": [14, 11, 12]}
    assert decision.notes() == [(Kind.OFFERED, r, {}) for r in (14, 11, 12)]
    assert [o["responder_id"] for o in decision.offers(ticket_id=9, round_=2, now=datetime.now(UTC))] == [
        14,
        11,
        12,
    ]


def test_a_direct_category_goes_to_the_least_loaded_one() -> None:
    certificate = CATALOGUE.get("certificate")  # direct, community staff
    decision = decide(certificate, DispatchMode.DIRECT, Level.GRID, VOLUNTEERS + STAFF, {2: 1})
    assert (
        decision.mode is Mode.DIRECT
        and decision.assignee == 2
        and decision.offers(1, 2, datetime.now(UTC)) == []
    )
    assert decision.notes() == [(Kind.ASSIGNED, 2, {})]


def test_nobody_fits_so_the_community_staff_hear_it_off_duty_ones_too() -> None:
    certificate = CATALOGUE.get("certificate")
    full = {2: 5}  # the one on-duty staff member is at capacity, the other is off duty
    decision = decide(certificate, DispatchMode.DIRECT, Level.GRID, VOLUNTEERS + STAFF, full)
    assert decision.status is Status.CREATED and decision.chosen == () and decision.assignee is None
    assert decision.notes() == [
        (Kind.NEEDS_DISPATCH, 2, {"level": 0}),
        (Kind.NEEDS_DISPATCH, 3, {"level": 0}),
    ]


def test_above_grid_level_only_that_levels_staff_may_take_it() -> None:
    eldercare = CATALOGUE.get("eldercare")
    decision = decide(eldercare, DispatchMode.GRAB, Level.COMMUNITY, VOLUNTEERS + STAFF, {})
    assert decision.mode is Mode.DIRECT and decision.chosen == (2,)  # no 抢单 above the grid


def test_handoff_picks_the_least_busy_staff_on_duty_or_tells_the_street() -> None:
    decision = decide_handoff(STAFF, {2: 3, 3: 0}, [99], Level.GRID)
    assert decision.chosen == (2,) and decision.notes() == [(Kind.ASSIGNED, 2, {"handoff": True})]
    nobody = decide_handoff([], {}, [98, 99], Level.GRID)
    assert nobody.chosen == () and [to for _, to, _ in nobody.notes()] == [98, 99]


async def test_a_move_to_a_state_the_table_does_not_allow_is_refused() -> None:
    assert TRANSITIONS[Action.ACCEPT].allows(Status.DISPATCHED, Status.ACCEPTED)
    assert not TRANSITIONS[Action.ACCEPT].allows(Status.DISPATCHED, Status.CLOSED)
    assert TRANSITIONS[Action.NOTE].allows(Status.RESOLVED, Status.RESOLVED)
    assert not TRANSITIONS[Action.NOTE].allows(Status.RESOLVED, Status.CREATED)
    ticket = Ticket(number="MH-1", status=Status.DISPATCHED)
    with pytest.raises(ValueError, match="accept may not move"):
        await apply(None, ticket, Action.ACCEPT, Status.CLOSED, actor=None, now=None)  # type: ignore[arg-type]
    assert ticket.status == Status.DISPATCHED  # refused before anything changed
