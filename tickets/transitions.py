"""The ticket state machine: which action may move a ticket from which state to which.
Every change goes through `apply`, which checks the move (source and target state) and appends the event in
the same transaction; an illegal move raises IllegalTransition and writes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import flag_modified

from tickets.actors import Actor
from tickets.errors import IllegalTransition
from tickets.models import Status, Ticket, TicketEvent


class Action(StrEnum):
    """What happened to a ticket, as its events record it."""

    CREATE = "create"
    DISPATCH = "dispatch"
    ACCEPT = "accept"
    DECLINE = "decline"
    RETURN = "return"
    REASSIGN = "reassign"
    ESCALATE = "escalate"
    PAUSE = "pause"
    RESUME = "resume"
    NOTE = "note"
    ATTACH = "attach"
    RESOLVE = "resolve"
    RATE = "rate"
    REOPEN = "reopen"
    AUTO_CLOSE = "auto_close"
    CLOSE = "close"
    CANCEL = "cancel"
    LINK_DUPLICATE = "link_duplicate"
    REVEAL_PHONE = "reveal_phone"
    ERASE = "erase"

    @property
    def verb(self) -> str:
        """The Chinese verb error messages use."""
        return TRANSITIONS[self].verb


@dataclass(frozen=True)
class Move:
    sources: frozenset[Status]
    targets: frozenset[Status] | None  # None: the ticket stays in the state it is in
    verb: str

    def allows(self, before: Status | None, after: Status) -> bool:
        if before is None:  # only creation starts from nothing
            return not self.sources and self.targets is not None and after in self.targets
        if before not in self.sources:
            return False
        return after == before if self.targets is None else after in self.targets


C, D, A, R, X, Z = (
    Status.CREATED,
    Status.DISPATCHED,
    Status.ACCEPTED,
    Status.RESOLVED,
    Status.CLOSED,
    Status.CANCELLED,
)
OPEN = frozenset({C, D, A})


def _move(sources: set[Status], targets: set[Status] | None, verb: str) -> Move:
    return Move(frozenset(sources), None if targets is None else frozenset(targets), verb)


TRANSITIONS: dict[Action, Move] = {
    Action.CREATE: _move(set(), {C}, "受理"),
    Action.DISPATCH: _move({C}, {D}, "派单"),
    Action.ACCEPT: _move({D}, {A}, "接单"),
    # Declining an offer others still hold leaves it dispatched; the last one sends it back to dispatch.
    Action.DECLINE: _move({D}, {D, C}, "拒绝接单"),
    Action.RETURN: _move({A}, {C}, "退回"),
    Action.REASSIGN: _move({D, A}, {D}, "改派"),
    Action.ESCALATE: _move(set(OPEN), {C}, "升级"),
    Action.PAUSE: _move({A}, None, "暂停计时"),
    Action.RESUME: _move({A}, None, "恢复计时"),
    Action.NOTE: _move({C, D, A, R}, None, "备注"),
    Action.ATTACH: _move(set(OPEN), None, "补充照片或位置"),
    Action.RESOLVE: _move({A}, {R}, "办结"),
    # 不满意 or not solved: the rating is recorded (still resolved) and the ticket is reopened at once.
    Action.RATE: _move({R}, {R, X}, "评价"),
    Action.REOPEN: _move({R, X}, {C}, "重新办理"),
    Action.AUTO_CLOSE: _move({R}, {X}, "自动结案"),
    # Staff close a resolved ticket at once (the resident rated it elsewhere, or will not): as 自动结案.
    Action.CLOSE: _move({R}, {X}, "结案"),
    Action.CANCEL: _move({C, D}, {Z}, "撤销"),
    Action.LINK_DUPLICATE: _move(set(OPEN), None, "合并"),
    # Who may see the resident's full phone is TicketService.reveal_phone's rule; only while it is open.
    Action.REVEAL_PHONE: _move(set(OPEN), None, "查看居民电话"),
    Action.ERASE: _move({X, Z}, None, "删除联系方式"),
}


def check(ticket: Ticket, action: Action) -> None:
    """Whether `action` may start from the ticket's state; IllegalTransition (in Chinese) if not."""
    if ticket.status not in TRANSITIONS[action].sources:
        raise IllegalTransition(number=ticket.number, status=Status(ticket.status).label, action=action.verb)


async def apply(
    session: AsyncSession,
    ticket: Ticket,
    action: Action,
    to: Status | None = None,
    *,
    actor: Actor,
    now: datetime,
    **data: Any,
) -> TicketEvent:
    """Move the ticket to `to` (None: it stays where it is) and record the event. A target the table does
    not allow for this action is a bug in the caller (ValueError). The flush is version-checked
    (optimistic lock)."""
    check(ticket, action)
    before = Status(ticket.status)
    after = before if to is None else to
    if not TRANSITIONS[action].allows(before, after):
        raise ValueError(f"{action} may not move a ticket from {before} to {after}")
    ticket.status = after
    flag_modified(ticket, "status")  # always an UPDATE, so the version (and the event seq) moves on
    await session.flush()
    event = TicketEvent(
        ticket_id=ticket.id,
        seq=ticket.version,
        at=now,
        actor=str(actor),
        action=action,
        from_status=before,
        to_status=after,
        data=data,
    )
    session.add(event)
    return event


def creation_event(ticket_id: int, at: datetime, actor: Actor, category: str, level: int) -> dict[str, Any]:
    """The `create` event's columns: `record_creation` writes it through the session and the batched
    create path with one multi-row INSERT."""
    return event_row(
        ticket_id, 1, at, actor, Action.CREATE, None, Status.CREATED, {"category": category, "level": level}
    )


def event_row(
    ticket_id: int,
    seq: int,
    at: datetime,
    actor: Actor,
    action: Action,
    before: Status | None,
    after: Status,
    data: dict[str, Any],
) -> dict[str, Any]:
    """An event's columns, for the batched create path's multi-row INSERT; the move is checked as
    `apply` checks it."""
    if not TRANSITIONS[action].allows(before, after):
        raise ValueError(f"{action} may not move a ticket from {before} to {after}")
    return {
        "ticket_id": ticket_id,
        "seq": seq,
        "at": at,
        "actor": str(actor),
        "action": action,
        "from_status": before,
        "to_status": after,
        "data": data,
    }


async def record_creation(session: AsyncSession, ticket: Ticket, *, actor: Actor, now: datetime) -> None:
    session.add(ticket)
    await session.flush()
    session.add(TicketEvent(**creation_event(ticket.id, now, actor, ticket.category, ticket.level)))
