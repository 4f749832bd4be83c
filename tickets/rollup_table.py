"""民呼我应 accounting, the roll-up behind the figures page: `ticket_rollup` holds, per Beijing day of
creation × street × community × grid × category, the counts of `tickets.metrics.Counts` that do not depend
on the clock. Database triggers (migration 0008, on SQLite and PostgreSQL alike) keep it: every INSERT,
UPDATE and DELETE of a ticket appends the new row's contribution (+1) and the old one's (-1) to
`ticket_rollup_delta` in the same statement (migration 0011_rollup_deltas), whatever code path wrote the ticket
(the batched insert of tickets.create, the ORM's transitions, escalation, retention, a hand-run SQL fix).
`tickets.rollup.fold` moves the deltas into the roll-up tables (the sweeper runs it); readers add the deltas
not yet folded, so the figures are exact in every transaction. Appending, not updating the day's row in place:
that row was shared by every create of a community's day, and its lock, held to COMMIT, made concurrent
creating processes queue (issue 16).

The counts that move with the clock (a response judged once the promise has passed, 超期 now) are not in
it: tickets.rollup counts them from the few unsettled tickets (open, or live and never accepted) through
the partial index `ix_tickets_unsettled_created`."""

from __future__ import annotations

from datetime import date
from typing import cast

from sqlalchemy import Column, Date, Index, Integer, String, Table, text
from sqlalchemy.orm import Mapped, mapped_column

from tickets.models import Base, Ticket

ROLLUP_TIMEZONE = "Asia/Shanghai"  # the triggers' day; fixed, China has one time zone and no DST
NO_GRID = 0  # grid_key of tickets without a grid (a primary key column cannot be NULL)

# Open tickets, and live tickets nobody has accepted yet: what the clock-dependent counts read.
UNSETTLED_TICKET_SQL = (
    "status IN ('created', 'dispatched', 'accepted') OR (first_accepted_at IS NULL AND status <> 'cancelled')"
)

Index(
    "ix_tickets_unsettled_created",
    Ticket.created_at,
    postgresql_where=text(UNSETTLED_TICKET_SQL),
    sqlite_where=text(UNSETTLED_TICKET_SQL),
)

# The times of a period's tickets (tickets.rollup's percentiles and buckets) read off this index alone
# (an index-only scan on PostgreSQL: the ~40,000 tickets of a month without visiting the table).
TIMES_INDEX_COLUMNS = (
    "created_at", "street_id", "community_id", "grid_id", "category", "assignee_id", "status",
    "first_dispatched_at", "first_accepted_at", "resolved_at",
)  # fmt: skip
Index("ix_tickets_times", *(Ticket.__table__.c[name] for name in TIMES_INDEX_COLUMNS))


class RollupCounts:
    """The count columns both roll-up tables have."""

    total: Mapped[int] = mapped_column(Integer)
    status_created: Mapped[int] = mapped_column(Integer)
    status_dispatched: Mapped[int] = mapped_column(Integer)
    status_accepted: Mapped[int] = mapped_column(Integer)
    status_resolved: Mapped[int] = mapped_column(Integer)
    status_closed: Mapped[int] = mapped_column(Integer)
    status_cancelled: Mapped[int] = mapped_column(Integer)
    received: Mapped[int] = mapped_column(Integer)
    dispatched: Mapped[int] = mapped_column(Integer)
    accepted: Mapped[int] = mapped_column(Integer)  # live and accepted at least once
    accepted_in_time: Mapped[int] = mapped_column(Integer)  # … and responded_in_time
    resolved: Mapped[int] = mapped_column(Integer)
    rated: Mapped[int] = mapped_column(Integer)
    satisfied: Mapped[int] = mapped_column(Integer)
    basic: Mapped[int] = mapped_column(Integer)
    unsatisfied: Mapped[int] = mapped_column(Integer)
    reopened: Mapped[int] = mapped_column(Integer)
    ever_resolved: Mapped[int] = mapped_column(Integer)


class TicketRollup(RollupCounts, Base):
    __tablename__ = "ticket_rollup"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    street_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    grid_key: Mapped[int] = mapped_column(Integer, primary_key=True)
    category: Mapped[str] = mapped_column(String(32), primary_key=True)


class TicketRollupCommunity(RollupCounts, Base):
    """The same counts per Beijing day × community: what a series (a street's or a community's) reads."""

    __tablename__ = "ticket_rollup_community"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    street_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(Integer, primary_key=True)


# Appended by the triggers, one row per ticket row added (+1) or taken away (-1); emptied by rollup.fold.
# No key: nothing looks one row up.
TICKET_ROLLUP_DELTA = Table(
    "ticket_rollup_delta",
    cast(Table, Ticket.__table__).metadata,  # Base.metadata (mypy cannot type that through the import cycle)
    Column("day", Date, nullable=False),
    Column("street_id", Integer, nullable=False),
    Column("community_id", Integer, nullable=False),
    Column("grid_key", Integer, nullable=False),
    Column("category", String(32), nullable=False),
    *(Column(name, Integer, nullable=False) for name in RollupCounts.__annotations__),
)
