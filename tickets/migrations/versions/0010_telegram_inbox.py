"""Telegram inbox: updates recorded by one receiver and handled by several workers (tickets.inbox): the inbox,
the handled markers, the Bot API calls made while handling, and each user's conversation state.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28 17:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tickets.models

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = "done_at IS NULL"


def upgrade() -> None:
    op.create_table(
        "telegram_inbox",
        sa.Column("update_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("received_at", tickets.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("done_at", tickets.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("update_id", name=op.f("pk_telegram_inbox")),
    )
    op.create_index(
        "ix_telegram_inbox_pending",
        "telegram_inbox",
        ["chat_id", "update_id"],
        postgresql_where=sa.text(PENDING),
        sqlite_where=sa.text(PENDING),
    )
    op.create_index(op.f("ix_telegram_inbox_done_at"), "telegram_inbox", ["done_at"])
    op.create_table(
        "telegram_inbox_handled",
        sa.Column("update_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("senders", sa.Text(), nullable=False),
        sa.Column("at", tickets.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("update_id", name=op.f("pk_telegram_inbox_handled")),
    )
    op.create_table(
        "telegram_inbox_calls",
        sa.Column("update_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("method", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("update_id", "seq", name=op.f("pk_telegram_inbox_calls")),
    )
    op.create_table(
        "telegram_chat_states",
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("updated_at", tickets.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_telegram_chat_states")),
    )


def downgrade() -> None:
    op.drop_table("telegram_chat_states")
    op.drop_table("telegram_inbox_calls")
    op.drop_table("telegram_inbox_handled")
    op.drop_index(op.f("ix_telegram_inbox_done_at"), table_name="telegram_inbox")
    op.drop_index("ix_telegram_inbox_pending", table_name="telegram_inbox")
    op.drop_table("telegram_inbox")
