"""Persistence: SQLAlchemy 2 typed models. Times are stored in UTC and always come back timezone-aware.

The states and scales the tables hold (Status, Rating, Level, …) live in `tickets.states` and are
re-exported here, where the code has always found them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ColumnElement,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    and_,
    or_,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncAttrs
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from tickets.catalogue import DispatchMode, Role
from tickets.crypto import EncryptedText
from tickets.states import RATING_LABELS as RATING_LABELS
from tickets.states import STATUS_LABELS as STATUS_LABELS
from tickets.states import Deadline as Deadline
from tickets.states import Level as Level
from tickets.states import OfferState as OfferState
from tickets.states import Rating as Rating
from tickets.states import Status as Status
from tickets.states import Urgency as Urgency

# BigInteger ids on PostgreSQL, but SQLite only auto-increments a plain INTEGER primary key.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use aware UTC times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(AsyncAttrs, DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class Street(Base):
    __tablename__ = "streets"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))


class Community(Base):
    __tablename__ = "communities"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    street_id: Mapped[int] = mapped_column(ForeignKey("streets.id"))
    street: Mapped[Street] = relationship(lazy="raise")


class Grid(Base):
    __tablename__ = "grids"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    households: Mapped[int | None]


class Compound(Base):
    """小区 (with its 楼栋) — the unit residents name when they say where they live."""

    __tablename__ = "compounds"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100), index=True)
    grid_id: Mapped[int] = mapped_column(ForeignKey("grids.id"), index=True)
    buildings: Mapped[int | None]  # number of 楼栋


class OrgVersion(Base):
    """One row: a token `load_org` changes whenever it runs, so every process that caches the org chart
    (communities, grids, compounds, responders' grids) sees that its copy is stale on its next read."""

    __tablename__ = "org_version"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    version: Mapped[str] = mapped_column(String(32))


class Responder(Base):
    """Anyone who answers tickets: volunteers, grid workers, staff, specialists."""

    __tablename__ = "responders"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(50))
    role: Mapped[Role] = mapped_column(String(32))
    street_id: Mapped[int] = mapped_column(ForeignKey("streets.id"))
    # None for street-level staff (街道), who answer for every community of the street.
    community_id: Mapped[int | None] = mapped_column(ForeignKey("communities.id"), index=True)
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)  # empty: every category of the role
    capacity: Mapped[int] = mapped_column(default=5)
    on_duty: Mapped[bool] = mapped_column(Boolean, default=True)
    phone: Mapped[str | None] = mapped_column(EncryptedText)  # E.164, encrypted at rest (tickets.crypto)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    last_assigned_at: Mapped[datetime | None]  # round-robin among equally loaded responders

    # Loaded only when asked for (selectinload / awaitable_attrs): dispatch reads responders on every
    # ticket and needs neither.
    grids: Mapped[list[Grid]] = relationship(secondary="responder_grids", lazy="raise_on_sql")
    contacts: Mapped[list[ResponderContact]] = relationship(
        back_populates="responder", lazy="raise_on_sql", cascade="all, delete-orphan"
    )

    def serves(self, category: str) -> bool:
        return not self.categories or category in self.categories

    def covers(self, ticket: Ticket) -> bool:
        """Whether the ticket is in this responder's area: their community, or for street staff (no
        community) every community of their street."""
        if self.community_id is None:
            return self.street_id == ticket.street_id
        return self.community_id == ticket.community_id


class StaffAccount(Base):
    """A dashboard login (tickets.accounts): one community or street staff member as they are in the org
    chart (`responder_id` gives the scope). Only an argon2 hash of the password is kept."""

    __tablename__ = "staff_accounts"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    responder_id: Mapped[int] = mapped_column(ForeignKey("responders.id"), index=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None]
    failed_logins: Mapped[int] = mapped_column(default=0)  # in a row; a success resets it
    locked_until: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]
    # Changed by a new password or disabling: sessions signed in under an older generation stop working.
    generation: Mapped[int] = mapped_column(default=1)


class ApiKey(Base):
    """A key a platform (a city's 12345 system) uses on the Open311 API (tickets.apikeys). Only the key's
    sha256 is kept: see tickets.apikeys for why a fast hash is right for a random key."""

    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class ResponderGrid(Base):
    __tablename__ = "responder_grids"
    responder_id: Mapped[int] = mapped_column(
        ForeignKey("responders.id", ondelete="CASCADE"), primary_key=True
    )
    grid_id: Mapped[int] = mapped_column(ForeignKey("grids.id", ondelete="CASCADE"), primary_key=True)


class ResponderContact(Base):
    """How to reach a responder on one channel, e.g. ("telegram", chat id): an account is one responder's,
    and a responder has one account per channel."""

    __tablename__ = "responder_contacts"
    __table_args__ = (
        UniqueConstraint("channel", "handle", name="uq_responder_contacts_channel_handle"),  # one responder
        # One account per channel: a second account never replaces the first silently (ChannelStore).
        UniqueConstraint("responder_id", "channel", name="uq_responder_contacts_responder_channel"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    responder_id: Mapped[int] = mapped_column(ForeignKey("responders.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    handle: Mapped[str] = mapped_column(String(128))
    responder: Mapped[Responder] = relationship(back_populates="contacts")


def split_channel_id(channel_id: str) -> tuple[str, str]:
    """("telegram", "123") from "telegram:123": the channel and the account on it."""
    channel, _, handle = channel_id.partition(":")
    return channel, handle


class Resident(Base):
    __tablename__ = "residents"
    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[str] = mapped_column(String(128), unique=True)  # "telegram:123", "web:abc"
    display_name: Mapped[str | None] = mapped_column(String(50))
    # E.164, encrypted at rest (tickets.crypto); shown masked, in full only through TicketService.reveal_phone
    phone: Mapped[str | None] = mapped_column(EncryptedText)
    community_id: Mapped[int | None] = mapped_column(ForeignKey("communities.id"))
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grids.id"))
    address: Mapped[str | None] = mapped_column(String(200))
    consent_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


_AWAITING_RESPONSE = tuple(s for s in Status if s.deadline is Deadline.RESPOND)

# Written out literally (not as bound parameters) so the planner can match queries to the partial indexes.
OPEN_TICKET_SQL = text("status IN ('created', 'dispatched', 'accepted')")
# The board's stretches (tickets.board): awaiting a responder, or accepted, with the clock running.
AWAITING_TICKET_SQL = text("status IN ('created', 'dispatched') AND paused_at IS NULL")
ACCEPTED_TICKET_SQL = text("status = 'accepted' AND paused_at IS NULL")
PAUSED_TICKET_SQL = text("paused_at IS NOT NULL")
BOARD_FILTER_COLUMNS = (
    "category", "status", "grid_id", "assignee_id", "created_at", "paused_at", "respond_by", "resolve_by",
)  # fmt: skip


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        # The staff queue: open tickets of one community (or street) in deadline order, read straight off
        # a partial index (the open backlog, not the whole history, is what it holds).
        Index(
            "ix_tickets_open_by_community",
            "community_id",
            "resolve_by",
            "id",
            postgresql_where=OPEN_TICKET_SQL,
            sqlite_where=OPEN_TICKET_SQL,
        ),
        Index(
            "ix_tickets_open_by_street",
            "street_id",
            "resolve_by",
            "id",
            postgresql_where=OPEN_TICKET_SQL,
            sqlite_where=OPEN_TICKET_SQL,
        ),
        # The dashboard's board (tickets.board) reads each stretch of its order off one of these: tickets
        # awaiting a responder by respond_by, accepted ones by resolve_by.
        *(
            Index(
                f"ix_tickets_{name}_by_{scope}",
                f"{scope}_id",
                column,
                "id",
                postgresql_where=where,
                sqlite_where=where,
            )
            for name, column, where in (
                ("awaiting", "respond_by", AWAITING_TICKET_SQL),
                ("accepted", "resolve_by", ACCEPTED_TICKET_SQL),
            )
            for scope in ("community", "street")
        ),
        # The board's counts (tickets.board: all open tickets of a scope matching any combination of
        # filters) read this index alone, never the table: every column a filter tests is in it.
        Index(
            "ix_tickets_open_facets",
            "community_id",
            "street_id",
            postgresql_include=[*BOARD_FILTER_COLUMNS],
            postgresql_where=OPEN_TICKET_SQL,
            sqlite_where=OPEN_TICKET_SQL,
        ),
        Index(  # the board's last stretch: the (few) paused tickets
            "ix_tickets_paused",
            "paused_at",
            postgresql_where=PAUSED_TICKET_SQL,
            sqlite_where=PAUSED_TICKET_SQL,
        ),
        Index("ix_tickets_assignee_status", "assignee_id", "status"),
        Index("ix_tickets_resident_created", "resident_id", "created_at"),
        Index("ix_tickets_status_respond_by", "status", "respond_by"),
        Index("ix_tickets_created_at", "created_at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"))
    category: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    intent: Mapped[str | None] = mapped_column(String(64))
    confidence: Mapped[float | None]
    street_id: Mapped[int] = mapped_column(ForeignKey("streets.id"))
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"))
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grids.id"))
    address: Mapped[str | None] = mapped_column(String(200))
    contact_phone: Mapped[str | None] = mapped_column(EncryptedText)  # as Resident.phone
    urgency: Mapped[Urgency] = mapped_column(String(16), default=Urgency.NORMAL)
    channel: Mapped[str] = mapped_column(String(32))
    status: Mapped[Status] = mapped_column(String(16))
    dispatch_mode: Mapped[DispatchMode] = mapped_column(String(16))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("responders.id"))
    level: Mapped[int] = mapped_column(default=Level.GRID)
    created_at: Mapped[datetime]
    respond_by: Mapped[datetime]
    resolve_by: Mapped[datetime]
    # The respond-by promised when the ticket was created: 响应率 is judged against it, whatever later
    # re-dispatches (decline, escalation, reassignment) grant the next responder.
    first_respond_by: Mapped[datetime]
    paused_at: Mapped[datetime | None]  # waiting on the resident: deadlines stop
    first_dispatched_at: Mapped[datetime | None]
    first_accepted_at: Mapped[datetime | None]
    responded_in_time: Mapped[bool | None]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    reopen_count: Mapped[int] = mapped_column(default=0)
    contacted: Mapped[bool | None]
    solved: Mapped[bool | None]
    rating: Mapped[Rating | None] = mapped_column(String(16))
    rating_comment: Mapped[str | None] = mapped_column(Text)
    rated_at: Mapped[datetime | None]
    resolution_note: Mapped[str | None] = mapped_column(Text)
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    version: Mapped[int] = mapped_column(default=1)

    # Optimistic locking: every UPDATE checks the version it read, so two concurrent changes
    # (e.g. two 接单 at once) cannot both win.
    __mapper_args__ = {"version_id_col": version}

    @property
    def progress_label(self) -> str:
        """The status as the resident reads it. A ticket offered to volunteers (抢单) that nobody has taken
        is dispatched without an assignee: for the resident it still waits for someone (等待接单)."""
        status = Status(self.status)
        if status is Status.DISPATCHED and self.assignee_id is None:
            return "等待接单"
        return status.label

    # ---- deadlines: the one rule, in Python (`deadline`, `is_overdue`) and in SQL (`overdue_condition`)

    def running_deadline(self) -> Deadline | None:
        """Which promise the clock runs against now; None when no clock runs: the ticket is paused
        (waiting on the resident) or finished (resolved, closed, cancelled)."""
        if self.paused_at is not None:
            return None
        return Status(self.status).deadline

    def deadline(self) -> datetime | None:
        """When the running promise falls due; None when paused or finished (see `running_deadline`)."""
        running = self.running_deadline()
        if running is None:
            return None
        return self.respond_by if running is Deadline.RESPOND else self.resolve_by

    def is_overdue(self, now: datetime) -> bool:
        """Past its running deadline at `now`. A paused or finished ticket is never overdue. The same rule
        for queries is `Ticket.overdue_condition`."""
        deadline = self.deadline()
        return deadline is not None and deadline < now

    @classmethod
    def overdue_condition(cls, now: datetime) -> ColumnElement[bool]:
        """`is_overdue` as a SQL condition, for the sweeper, the figures and the queues."""
        return and_(
            cls.paused_at.is_(None),
            or_(
                and_(cls.status.in_(_AWAITING_RESPONSE), cls.respond_by < now),
                and_(cls.status == Status.ACCEPTED, cls.resolve_by < now),
            ),
        )


class TicketEvent(Base):
    """Append-only history: who did what, when, and the state change it made."""

    __tablename__ = "ticket_events"
    __table_args__ = (UniqueConstraint("ticket_id", "seq", name="uq_ticket_events_ticket_seq"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    seq: Mapped[int]
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(64))  # "resident:3", "responder:7", "system"
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[Status | None] = mapped_column(String(16))
    to_status: Mapped[Status] = mapped_column(String(16))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Offer(Base):
    """A 抢单 offer of a ticket to one responder; the first to accept wins."""

    __tablename__ = "offers"
    __table_args__ = (
        UniqueConstraint("ticket_id", "responder_id", "round", name="uq_offers_ticket_responder"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    responder_id: Mapped[int] = mapped_column(ForeignKey("responders.id"), index=True)
    round: Mapped[int]  # the ticket version that made the offer: a re-dispatch starts a new round
    offered_at: Mapped[datetime]
    state: Mapped[OfferState] = mapped_column(String(16), default=OfferState.OPEN)


class PointsEntry(Base):
    """爱心积分 ledger: balances are sums, never a counter that can drift."""

    __tablename__ = "points_ledger"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    responder_id: Mapped[int] = mapped_column(ForeignKey("responders.id"), index=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    points: Mapped[int]
    reason: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]


class Notification(Base):
    """Outbox: written in the same transaction as the change it announces; delivered later."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "delivered_at", "next_attempt_at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    created_at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(32))  # offered, accepted, taken, resolved, rate, escalated, ...
    recipient_type: Mapped[str] = mapped_column(String(16))  # resident | responder
    recipient_id: Mapped[int]
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    # Where the channel put it ("chat id:message id" on Telegram), so a later change can edit it in place
    # (an offer another responder took becomes 已被他人接单).
    message_ref: Mapped[str | None] = mapped_column(String(64))


class TicketCounter(Base):
    """Per-day sequence behind MH-YYYYMMDD-NNNN numbers."""

    __tablename__ = "ticket_counters"
    day: Mapped[str] = mapped_column(String(8), primary_key=True)
    last: Mapped[int] = mapped_column(default=0)


class InviteCode(Base):
    """A one-time code staff give a responder to bind a chat account (/join CODE). Only its hash is kept."""

    __tablename__ = "invite_codes"
    id: Mapped[int] = mapped_column(primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    responder_id: Mapped[int] = mapped_column(ForeignKey("responders.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    used_by: Mapped[str | None] = mapped_column(String(128))  # the channel identity that redeemed it


class InboundMessage(Base):
    """A resident's message to the assistant, kept until the assistant has answered it: when the assistant
    is down or slow nothing is lost, and stored messages are replayed in order."""

    __tablename__ = "inbound_messages"
    __table_args__ = (Index("ix_inbound_messages_pending", "answered_at", "channel_id", "id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel_id: Mapped[str] = mapped_column(String(128))  # "telegram:123"
    text: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(default=0)
    answered_at: Mapped[datetime | None]


class ProcessedUpdate(Base):
    """Update ids a channel has delivered, so a repeated update is processed at most once."""

    __tablename__ = "processed_updates"
    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(index=True)


class ButtonPayload(Base):
    """An assistant button's payload too long for the channel's button data, referred to by id."""

    __tablename__ = "button_payloads"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(index=True)


# The figures' roll-up table and its partial index on tickets, in their own module (models.py's length).
# The Telegram inbox's tables (tickets.inbox), likewise.
from tickets.inbox_tables import ChatState as ChatState  # noqa: E402
from tickets.inbox_tables import InboxCall as InboxCall  # noqa: E402
from tickets.inbox_tables import InboxHandled as InboxHandled  # noqa: E402
from tickets.inbox_tables import InboxUpdate as InboxUpdate  # noqa: E402
from tickets.rollup_table import TicketRollup as TicketRollup  # noqa: E402
from tickets.rollup_table import TicketRollupCommunity as TicketRollupCommunity  # noqa: E402
