"""Intake (the resident-facing way in): hourly limit per resident, duplicates linked to the open ticket,
and 转人工 hand-off tickets for the community staff."""

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from app.settings import Settings
from app.wiring import policy_from
from tests.conftest import Org, actions, count, notifications
from tickets.actors import SYSTEM
from tickets.clock import ManualClock
from tickets.db import unit_of_work
from tickets.errors import TooManyTickets, ValidationError
from tickets.models import Notification, Responder, Status, Ticket
from tickets.service import NewTicket, Policy, TicketService


def _with_policy(service: TicketService, **changes: object) -> TicketService:
    service.policy = replace(service.policy, **changes)  # type: ignore[arg-type]
    return service


async def test_defaults_are_off_in_the_domain(service: TicketService, org: Org) -> None:
    assert Policy().max_tickets_per_hour is None and Policy().duplicate_window is None
    resident = await org.resident()
    for _ in range(8):
        result = await service.intake(NewTicket(resident, "environment", "楼下垃圾好几天没人收了"))
        assert not result.duplicate
    assert await count(service, Ticket) == 8


def test_the_app_turns_them_on() -> None:
    policy = policy_from(Settings.model_validate({}))
    assert policy.max_tickets_per_hour == 5
    assert policy.duplicate_window == timedelta(days=1)
    off = policy_from(
        Settings.model_validate({"MINHU_MAX_TICKETS_PER_HOUR": 0, "MINHU_DUPLICATE_WINDOW_HOURS": 0})
    )
    assert off.max_tickets_per_hour is None and off.duplicate_window is None


async def test_more_than_the_hourly_limit_is_asked_to_wait(
    service: TicketService, org: Org, clock: ManualClock
) -> None:
    _with_policy(service, max_tickets_per_hour=3)
    resident, other = await org.resident("a"), await org.resident("b")
    texts = ["楼道灯坏了", "小区门口的井盖松了", "楼下有人夜里施工", "邻居家狗天天叫"]
    categories = ["property", "facility_repair", "environment", "neighbor_dispute"]
    for text, category in zip(texts[:3], categories[:3], strict=True):
        await service.intake(NewTicket(resident, category, text))
    with pytest.raises(TooManyTickets) as raised:
        await service.intake(NewTicket(resident, categories[3], texts[3]))
    assert "3" in raised.value.message and "稍等" in raised.value.message
    assert await count(service, Ticket) == 3
    # Another resident is not affected; and an hour later the first may go on.
    await service.intake(NewTicket(other, categories[3], texts[3]))
    clock.advance(timedelta(minutes=61))
    assert not (await service.intake(NewTicket(resident, categories[3], texts[3]))).duplicate


async def test_a_near_identical_request_is_linked_to_the_open_ticket(
    service: TicketService, org: Org, clock: ManualClock
) -> None:
    _with_policy(service, duplicate_window=timedelta(days=1), max_tickets_per_hour=1)
    resident = await org.resident(compound="安居苑")
    first = await service.intake(NewTicket(resident, "property", "3栋电梯坏了好几天了,老人上不了楼"))
    clock.advance(timedelta(hours=2))
    again = await service.intake(NewTicket(resident, "property", "3栋电梯坏了好几天了!老人上不了楼啊"))

    assert again.duplicate and again.ticket.number == first.ticket.number
    assert await count(service, Ticket) == 1  # and the hourly limit did not count the duplicate
    history = await service.history(first.ticket.number, SYSTEM)
    linked = [e for e in history if e.action == "link_duplicate"]
    assert len(linked) == 1 and linked[0].data["text"] == "3栋电梯坏了好几天了!老人上不了楼啊"
    assert linked[0].to_status == first.ticket.status  # nothing else changes


@pytest.mark.parametrize(
    ("category", "text", "advance", "close_first"),
    [
        ("environment", "3栋电梯坏了好几天了,老人上不了楼", timedelta(hours=1), False),  # other category
        ("property", "物业费收得太高了,要求公开账目", timedelta(hours=1), False),  # different matter
        ("property", "3栋电梯坏了好几天了,老人上不了楼", timedelta(days=2), False),  # outside the window
        ("property", "3栋电梯坏了好几天了,老人上不了楼", timedelta(hours=1), True),  # first no longer open
    ],
)
async def test_not_a_duplicate(
    service: TicketService,
    org: Org,
    clock: ManualClock,
    category: str,
    text: str,
    advance: timedelta,
    close_first: bool,
) -> None:
    _with_policy(service, duplicate_window=timedelta(days=1))
    resident = await org.resident(compound="安居苑")
    first = await service.intake(NewTicket(resident, "property", "3栋电梯坏了好几天了,老人上不了楼"))
    if close_first:
        await service.cancel(first.ticket.number, resident)
    clock.advance(advance)
    second = await service.intake(NewTicket(resident, category, text))
    assert not second.duplicate and second.ticket.number != first.ticket.number


async def test_another_residents_similar_request_is_its_own_ticket(service: TicketService, org: Org) -> None:
    _with_policy(service, duplicate_window=timedelta(days=1))
    a, b = await org.resident("a"), await org.resident("b")
    first = await service.intake(NewTicket(a, "property", "3栋电梯坏了"))
    second = await service.intake(NewTicket(b, "property", "3栋电梯坏了"))
    assert not second.duplicate and second.ticket.number != first.ticket.number


async def test_handoff_goes_to_community_staff_with_the_masked_transcript(
    service: TicketService, org: Org
) -> None:
    resident = await org.resident()
    transcript = "居民:我想问问房子的事 电话13912345678\n助手:抱歉,我没太明白\n居民:转人工"
    ticket = await service.handoff(resident, transcript)

    assert ticket.status == Status.DISPATCHED and ticket.assignee_id == org["staff-a"]
    assert "139****5678" in ticket.text and "13912345678" not in ticket.text
    assert ticket.category == "social_assistance" and ticket.intent == "human_handoff"
    assert await actions(service, ticket.number) == [
        ("create", None, "created"),
        ("dispatch", "created", "dispatched"),
    ]
    assert ("assigned", "responder", org["staff-a"]) in await notifications(service, ticket.number)
    # The staff member can take it like any other ticket.
    assert (await service.accept(ticket.number, org["staff-a"])).status == Status.ACCEPTED


async def test_handoff_prefers_staff_on_duty_and_without_staff_tells_the_street(
    service: TicketService, org: Org
) -> None:
    resident = await org.resident(community="jinjiang")
    await service.set_on_duty(org["staff-j"], False)
    ticket = await service.handoff(resident, "居民:转人工")
    assert ticket.assignee_id == org["staff-j"]  # off duty, but the only staff member on record
    async with unit_of_work(service.sessions) as session:
        await session.execute(update(Responder).where(Responder.id == org["staff-j"]).values(active=False))
    waiting = await service.handoff(resident, "居民:还是转人工")
    assert (waiting.status, waiting.assignee_id) == (Status.CREATED, None)
    assert await notifications(service, waiting.number) == [("needs_dispatch", "responder", org["street-1"])]
    assert (ticket.number, waiting.number) == ("MH-20261123-0001", "MH-20261123-0002")


async def test_handoff_keeps_the_conversation_category(service: TicketService, org: Org) -> None:
    resident = await org.resident(community="jinjiang")
    ticket = await service.handoff(resident, "居民:楼上漏水 物业不管", category="property")
    assert ticket.category == "property" and ticket.assignee_id == org["staff-j"]


# ------------------------------------------------------------------ requests registered later (saved)


async def test_a_request_registered_later_keeps_its_time_and_tells_the_resident(
    service: TicketService, org: Org, clock: ManualClock
) -> None:
    resident, other = await org.resident("a", compound="安居苑"), await org.resident("b")
    made = clock.now()
    clock.advance(timedelta(hours=3))
    later, now = await service.create_tickets(
        [
            NewTicket(resident, "property", "3栋电梯坏了", received_at=made, announce=True),
            NewTicket(other, "property", "楼道灯坏了"),  # the resident is waiting for this one's reply
        ]
    )
    assert isinstance(later, Ticket) and isinstance(now, Ticket)
    category = service.catalogue.get("property")
    assert later.created_at == made and now.created_at == clock.now()
    assert later.respond_by == service.calendar.deadline(made, category.respond_within)
    assert later.resolve_by == service.calendar.deadline(made, category.resolve_within)
    history = await service.history(later.number, SYSTEM)
    assert [(e.action, e.at) for e in history] == [("create", made), ("dispatch", clock.now())]
    later_notes = await notifications(service, later.number)
    assert later_notes[-1] == ("registered", "resident", resident)
    assert [n for n in later_notes if n[1] == "resident"] == [("registered", "resident", resident)]
    assert [n for n in await notifications(service, now.number) if n[1] == "resident"] == []


async def test_a_handoff_registered_later_keeps_its_time_and_tells_the_resident(
    service: TicketService, org: Org, clock: ManualClock
) -> None:
    resident = await org.resident()
    made = clock.now()
    clock.advance(timedelta(minutes=30))
    ticket = await service.handoff(resident, "居民:转人工", received_at=made, announce=True)
    assert ticket.created_at == made and ticket.first_dispatched_at == clock.now()
    assert ("registered", "resident", resident) in await notifications(service, ticket.number)


async def test_a_duplicate_registered_later_tells_the_resident_where_it_went(
    service: TicketService, org: Org, clock: ManualClock
) -> None:
    _with_policy(service, duplicate_window=timedelta(days=1))
    resident = await org.resident(compound="安居苑")
    first = await service.intake(NewTicket(resident, "property", "3栋电梯坏了好几天了,老人上不了楼"))
    made = clock.now()
    clock.advance(timedelta(hours=1))
    again = await service.intake(
        NewTicket(resident, "property", "3栋电梯坏了好几天了,老人上不了楼", received_at=made, announce=True)
    )
    assert again.duplicate and again.ticket.number == first.ticket.number
    notes = await notifications(service, first.ticket.number)
    assert notes[-1] == ("registered", "resident", resident) and notes.count(notes[-1]) == 1
    async with service.sessions() as session:
        note = await session.scalar(select(Notification).where(Notification.kind == "registered"))
    assert note is not None and note.payload["duplicate"] is True


@pytest.mark.parametrize(
    ("shift", "problem"),
    [
        (timedelta(minutes=2), "晚于现在"),  # in the future
        (-timedelta(days=7, minutes=1), "7 天前"),  # older than a week
        (None, "timezone-aware"),  # naive
    ],
)
async def test_received_at_is_checked(
    service: TicketService, org: Org, clock: ManualClock, shift: timedelta | None, problem: str
) -> None:
    _with_policy(service, duplicate_window=timedelta(days=1))
    resident = await org.resident()
    first = await service.intake(NewTicket(resident, "property", "楼道灯坏了"))
    at = clock.now().replace(tzinfo=None) if shift is None else clock.now() + shift
    for text in ("楼道灯坏了", "小区门口的井盖松了"):  # a duplicate, and a new ticket
        with pytest.raises(ValidationError) as raised:
            await service.intake(NewTicket(resident, "property", text, received_at=at))
        assert problem in raised.value.message
    assert [e.action for e in await service.history(first.ticket.number, SYSTEM)] == ["create", "dispatch"]
    assert await count(service, Ticket) == 1


async def test_a_received_at_seconds_ahead_is_now(
    service: TicketService, org: Org, clock: ManualClock
) -> None:
    resident = await org.resident()
    ahead = clock.now() + timedelta(seconds=30)  # another process's clock
    ticket = (await service.intake(NewTicket(resident, "property", "楼道灯坏了", received_at=ahead))).ticket
    assert ticket.created_at == clock.now()
