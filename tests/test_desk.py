"""Staff at the desk (tickets.desk): escalate by hand, pause/resume, close a resolved ticket, the reveal log;
each only by staff of the ticket's area and only where the transition table allows it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.conftest import Org, actions, notifications
from tickets.clock import ManualClock
from tickets.errors import IllegalTransition, NotAllowed, ReasonRequired
from tickets.models import Level, Status
from tickets.service import NewTicket, TicketService


async def test_staff_escalate_by_hand_and_the_street_is_told(service: TicketService, org: Org) -> None:
    ticket = await service.create_ticket(NewTicket(await org.resident(), "property", "电梯坏了三天"))
    with pytest.raises(ReasonRequired):
        await service.escalate_by_hand(ticket.number, org["staff-a"], "  ")
    with pytest.raises(NotAllowed):
        await service.escalate_by_hand(ticket.number, org["staff-j"], "别的社区")
    up = await service.escalate_by_hand(ticket.number, org["staff-a"], "涉及多个部门")
    assert up.level == Level.COMMUNITY
    assert ("escalate", ticket.status, "created") in await actions(service, ticket.number)
    assert any(kind == "escalated" for kind, _, _ in await notifications(service, ticket.number))
    await service.escalate_by_hand(ticket.number, org["staff-a"], "还要街道协调")
    with pytest.raises(IllegalTransition, match="街道"):
        await service.escalate_by_hand(ticket.number, org["street-1"], "再升")


async def test_staff_pause_and_resume_an_accepted_ticket(
    service: TicketService, org: Org, clock: ManualClock
) -> None:
    ticket = await service.create_ticket(NewTicket(await org.resident(), "facility_repair", "路灯不亮"))
    with pytest.raises(IllegalTransition):
        await service.pause_by_staff(ticket.number, org["staff-a"], "等居民")  # not accepted yet
    accepted = await service.accept(ticket.number, org["grid-a1"])
    paused = await service.pause_by_staff(ticket.number, org["staff-a"], "居民出差,下周再约")
    assert paused.paused_at is not None
    clock.advance(timedelta(hours=5))
    resumed = await service.resume_by_staff(ticket.number, org["staff-a"])
    assert resumed.paused_at is None and resumed.resolve_by == accepted.resolve_by + timedelta(hours=5)


async def test_staff_close_a_resolved_ticket_only(service: TicketService, org: Org) -> None:
    ticket = await service.create_ticket(NewTicket(await org.resident(), "facility_repair", "路灯不亮"))
    with pytest.raises(IllegalTransition):
        await service.close_by_staff(ticket.number, org["staff-a"], "已处理")
    await service.accept(ticket.number, org["grid-a1"])
    await service.resolve(ticket.number, org["grid-a1"], "已更换灯泡")
    closed = await service.close_by_staff(ticket.number, org["staff-a"], "居民电话确认满意")
    assert closed.status == Status.CLOSED and closed.closed_at is not None


async def test_the_reveal_log_is_for_admins(service: TicketService, org: Org) -> None:
    ticket = await service.create_ticket(
        NewTicket(await org.resident(), "eldercare", "想申请助餐", phone="13812345678")
    )
    assert await service.reveal_phone(ticket.number, org["staff-a"]) == "+8613812345678"
    admin = await service.add_account("he", org["street-1"], "admin password 1", is_admin=True)
    staff = await service.add_account("zhou", org["staff-a"], "staff password 1")
    [reveal] = await service.reveal_log(admin.account_id)
    assert (reveal.number, reveal.responder, reveal.role) == (ticket.number, "周丽", "工作人员")
    with pytest.raises(NotAllowed):
        await service.reveal_log(staff.account_id)
