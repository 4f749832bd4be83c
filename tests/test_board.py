"""The dashboard's board (tickets.board): the staff scope, overdue first then by running deadline, filters
that combine, keyset pages that neither skip nor repeat, the working time left, and the events feed."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from tests.conftest import Org
from tickets.board import BadCursor, BoardFilter, Cursor
from tickets.calendar import WorkCalendar
from tickets.clock import ManualClock
from tickets.models import Status
from tickets.service import NewTicket, TicketService


async def test_staff_see_their_scope_overdue_first_then_by_deadline(
    service: TicketService, org: Org, clock: ManualClock
) -> None:
    anju, jinjiang = await org.resident("a"), await org.resident("j", community="jinjiang")
    slow = await service.create_ticket(NewTicket(anju, "legal_aid", "想咨询法律问题"))  # respond within 1 day
    fast = await service.create_ticket(NewTicket(anju, "property", "楼道灯坏了"))  # 2 hours
    other = await service.create_ticket(NewTicket(jinjiang, "property", "锦江的灯也坏了"))
    clock.advance(timedelta(hours=3))  # the property ticket's respond-by has passed
    late = await service.create_ticket(NewTicket(anju, "eldercare", "想申请助餐"))

    page = await service.board(org["staff-a"], BoardFilter())
    numbers = [row.ticket.number for row in page.rows]
    assert numbers[0] == fast.number and page.rows[0].overdue
    assert set(numbers) == {slow.number, fast.number, late.number} and page.total == 3
    assert page.rows[0].working_time_left is not None and page.rows[0].working_time_left < timedelta()

    street = await service.board(org["street-1"], BoardFilter())
    assert other.number in [row.ticket.number for row in street.rows] and street.total == 4
    only_late = await service.board(org["staff-a"], BoardFilter(overdue=True))
    assert [row.ticket.number for row in only_late.rows] == [fast.number] and only_late.total == 1
    by_the_rule = await service.queue(org["street-1"], overdue_only=True)  # Ticket.overdue_condition
    late_street = await service.board(org["street-1"], BoardFilter(overdue=True))
    assert {t.number for t in by_the_rule} == {row.ticket.number for row in late_street.rows}
    assert late_street.total == len(by_the_rule) == 2


async def test_filters_combine(service: TicketService, org: Org, clock: ManualClock) -> None:
    resident = await org.resident()
    first = await service.create_ticket(NewTicket(resident, "property", "楼道灯坏了"))
    clock.advance(timedelta(days=1))
    second = await service.create_ticket(NewTicket(resident, "property", "电梯又坏了"))
    await service.create_ticket(NewTicket(resident, "eldercare", "想申请助餐"))
    staff = org["staff-a"]

    def numbers(page: object) -> set[str]:
        return {row.ticket.number for row in page.rows}  # type: ignore[attr-defined]

    assert numbers(await service.board(staff, BoardFilter(category="property"))) == {
        first.number,
        second.number,
    }
    today = BoardFilter(category="property", created_from=date(2026, 11, 24), created_to=date(2026, 11, 24))
    assert numbers(await service.board(staff, today)) == {second.number}
    assert (await service.board(staff, BoardFilter(status=Status.CLOSED))).total == 0
    assert (await service.board(staff, BoardFilter(assignee_id=10**9))).total == 0


async def test_keyset_pages_cover_every_open_ticket_once(
    service: TicketService, org: Org, clock: ManualClock
) -> None:
    resident = await org.resident()
    made = set()
    for number in range(7):
        clock.advance(timedelta(minutes=7))
        made.add(
            (await service.create_ticket(NewTicket(resident, "property", f"第{number}个问题楼道灯"))).number
        )
    seen: list[str] = []
    cursor = None
    while True:
        page = await service.board(org["staff-a"], BoardFilter(), cursor, limit=3)
        seen += [row.ticket.number for row in page.rows]
        assert page.total == 7
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sorted(seen) == sorted(made) and len(seen) == 7


@pytest.mark.parametrize("token", ["1000000000", "x", "W10", "WzIsIjIwMjYtMDEtMDEiLDFd"])
async def test_a_malformed_cursor_is_refused(token: str) -> None:
    with pytest.raises(BadCursor):
        Cursor.decode(token)


def test_working_time_left_counts_office_hours_only(catalogue: object) -> None:
    from tests.conftest import MONDAY_9AM
    from tickets.catalogue import Catalogue

    calendar = WorkCalendar.for_catalogue(Catalogue.load())
    friday_5pm = MONDAY_9AM + timedelta(days=4, hours=8)
    monday_10am = MONDAY_9AM + timedelta(days=7, hours=1)
    left = calendar.working_time_between(friday_5pm, monday_10am)
    office_end = calendar.office_end
    assert left == timedelta(hours=office_end.hour - 17, minutes=office_end.minute) + timedelta(
        hours=10 - calendar.office_start.hour, minutes=-calendar.office_start.minute
    )
    assert calendar.working_time_between(monday_10am, friday_5pm) == -left


async def test_events_after_an_id_come_in_order(service: TicketService, org: Org) -> None:
    resident = await org.resident()
    start = await service.last_event_id()
    ticket = await service.create_ticket(NewTicket(resident, "property", "楼道灯坏了"))
    events = await service.events_after(start)
    assert events and all(number == ticket.number for _, number, _, _ in events)
    assert [e.id for e, *_ in events] == sorted(e.id for e, *_ in events)
    assert await service.events_after(events[-1][0].id) == []


def test_working_time_between_agrees_with_counting_minute_by_minute() -> None:
    """The whole-days shortcut against a plain count of office minutes, over spans up to three weeks."""
    import random

    from tests.conftest import MONDAY_9AM
    from tickets.catalogue import Catalogue

    calendar = WorkCalendar.for_catalogue(Catalogue.load())

    def counted(start: object, end: object) -> timedelta:
        minutes, at = 0, start
        while at < end:  # type: ignore[operator]
            local = at.astimezone(calendar.tz)  # type: ignore[attr-defined]
            if (
                calendar.is_workday(local.date())
                and calendar.office_start <= local.time() < calendar.office_end
            ):
                minutes += 1
            at += timedelta(minutes=1)  # type: ignore[operator]
        return timedelta(minutes=minutes)

    pick = random.Random(14)
    for _ in range(6):
        start = MONDAY_9AM + timedelta(minutes=pick.randrange(0, 60 * 24 * 10))
        end = start + timedelta(minutes=pick.randrange(0, 60 * 24 * 21))
        assert calendar.working_time_between(start, end) == counted(start, end)
