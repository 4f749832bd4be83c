"""The states and scales a ticket is described by: its status and the deadline that runs in it, urgency,
the resident's rating, the escalation level and an offer's state. Plain enums with their Chinese labels;
`tickets.models` stores them and re-exports them."""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Status(StrEnum):
    CREATED = "created"  # 已受理, waiting for a responder
    DISPATCHED = "dispatched"  # 已派单 / offered (抢单)
    ACCEPTED = "accepted"  # 已接单, being worked
    RESOLVED = "resolved"  # 已办结, waiting for the resident's rating
    CLOSED = "closed"  # 已结案
    CANCELLED = "cancelled"  # 已撤销 by the resident

    @property
    def label(self) -> str:
        return STATUS_LABELS[self]

    @property
    def is_open(self) -> bool:
        return self in (Status.CREATED, Status.DISPATCHED, Status.ACCEPTED)

    @property
    def deadline(self) -> Deadline | None:
        """The deadline that runs in this state: RESPOND while a responder is awaited (created,
        dispatched), RESOLVE while it is being worked (accepted); None once it is finished."""
        if self in (Status.CREATED, Status.DISPATCHED):
            return Deadline.RESPOND
        return Deadline.RESOLVE if self is Status.ACCEPTED else None


STATUS_LABELS = {
    Status.CREATED: "已受理",
    Status.DISPATCHED: "已派单",
    Status.ACCEPTED: "处理中",
    Status.RESOLVED: "已办结待评价",
    Status.CLOSED: "已结案",
    Status.CANCELLED: "已撤销",
}


class Deadline(StrEnum):
    """The two promises a ticket runs against, named as the columns that hold them."""

    RESPOND = "respond_by"  # 响应: a responder accepts it
    RESOLVE = "resolve_by"  # 办结: it is done

    @property
    def label(self) -> str:
        return "响应" if self is Deadline.RESPOND else "办结"


class Urgency(StrEnum):
    NORMAL = "normal"
    URGENT = "urgent"


class Rating(StrEnum):
    SATISFIED = "satisfied"  # 满意
    BASIC = "basic"  # 基本满意
    UNSATISFIED = "unsatisfied"  # 不满意

    @property
    def label(self) -> str:
        return RATING_LABELS[self]

    @classmethod
    def parse(cls, value: str) -> Rating:
        """The code or the Chinese words residents see on the buttons."""
        for rating, label in RATING_LABELS.items():
            if value in (rating.value, label):
                return rating
        raise ValueError(value)


RATING_LABELS = {Rating.SATISFIED: "满意", Rating.BASIC: "基本满意", Rating.UNSATISFIED: "不满意"}


class Level(IntEnum):
    """Escalation level: who is answerable now (小事不出网格,大事不出社区)."""

    GRID = 0
    COMMUNITY = 1
    STREET = 2

    @property
    def label(self) -> str:
        return ("网格", "社区", "街道")[self]


class OfferState(StrEnum):
    OPEN = "open"  # waiting for the responder's 接单 / 不接
    WON = "won"  # they accepted first
    LOST = "lost"  # someone else accepted first
    DECLINED = "declined"  # they said 不接
    WITHDRAWN = "withdrawn"  # re-dispatched, escalated or cancelled before anyone accepted
