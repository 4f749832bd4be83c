"""The ticket state machine: which action may move a ticket from which state to which.
Every change goes through `apply`, which checks the move and appends the event in the same transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import flag_modified

from tickets.actors import Actor
from tickets.errors import IllegalTransition
from tickets.models import Status, Ticket, TicketEvent

C, D, A, R, X, Z = (
    Status.CREATED,
    Status.DISPATCHED,
    Status.ACCEPTED,
    Status.RESOLVED,
    Status.CLOSED,
    Status.CANCELLED,
)

# action: (allowed from-states, Chinese verb for error messages)
TRANSITIONS: dict[str, tuple[frozenset[Status], str]] = {
    "create": (frozenset(), "受理"),
    "dispatch": (frozenset({C}), "派单"),
    "accept": (frozenset({D}), "接单"),
    "decline": (frozenset({D}), "拒绝接单"),
    "return": (frozenset({A}), "退回"),
    "reassign": (frozenset({D, A}), "改派"),
    "escalate": (frozenset({C, D, A}), "升级"),
    "pause": (frozenset({A}), "暂停计时"),
    "resume": (frozenset({A}), "恢复计时"),
    "note": (frozenset({C, D, A, R}), "备注"),
    "attach": (frozenset({C, D, A}), "补充照片或位置"),
    "resolve": (frozenset({A}), "办结"),
    "rate": (frozenset({R}), "评价"),
    "reopen": (frozenset({R, X}), "重新办理"),
    "close": (frozenset({R}), "结案"),
    "auto_close": (frozenset({R}), "自动结案"),
    "cancel": (frozenset({C, D}), "撤销"),
    "link_duplicate": (frozenset({C, D, A}), "合并"),
}


def check(ticket: Ticket, action: str) -> None:
    allowed, verb = TRANSITIONS[action]
    if ticket.status not in allowed:
        raise IllegalTransition(number=ticket.number, status=Status(ticket.status).label, action=verb)


async def apply(
    session: AsyncSession,
    ticket: Ticket,
    action: str,
    to: Status,
    *,
    actor: Actor,
    now: datetime,
    **data: Any,
) -> TicketEvent:
    """Move the ticket and record the event. The flush is version-checked (optimistic lock)."""
    check(ticket, action)
    before = Status(ticket.status)
    ticket.status = to
    flag_modified(ticket, "status")  # always an UPDATE, so the version (and the event seq) moves on
    await session.flush()
    event = TicketEvent(
        ticket_id=ticket.id,
        seq=ticket.version,
        at=now,
        actor=str(actor),
        action=action,
        from_status=before,
        to_status=to,
        data=data,
    )
    session.add(event)
    return event


async def record_creation(session: AsyncSession, ticket: Ticket, *, actor: Actor, now: datetime) -> None:
    session.add(ticket)
    await session.flush()
    session.add(
        TicketEvent(
            ticket_id=ticket.id,
            seq=ticket.version,
            at=now,
            actor=str(actor),
            action="create",
            from_status=None,
            to_status=ticket.status,
            data={"category": ticket.category, "level": ticket.level},
        )
    )
