"""staff_accounts: dashboard logins of community and street staff (tickets.accounts), argon2 hashes only;
and the partial indexes the dashboard's board reads its order from (tickets.board)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BOARD_INDEXES = (
    ("awaiting", "respond_by", "status IN ('created', 'dispatched') AND paused_at IS NULL"),
    ("accepted", "resolve_by", "status = 'accepted' AND paused_at IS NULL"),
)


def upgrade() -> None:
    op.create_table(
        "staff_accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("responder_id", sa.Integer(), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["responder_id"], ["responders.id"], name=op.f("fk_staff_accounts_responder_id_responders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_accounts")),
        sa.UniqueConstraint("username", name=op.f("uq_staff_accounts_username")),
    )
    op.create_index(op.f("ix_staff_accounts_responder_id"), "staff_accounts", ["responder_id"], unique=False)
    for name, column, where in BOARD_INDEXES:
        for scope in ("community", "street"):
            op.create_index(
                f"ix_tickets_{name}_by_{scope}",
                "tickets",
                [f"{scope}_id", column, "id"],
                unique=False,
                postgresql_where=sa.text(where),
                sqlite_where=sa.text(where),
            )
    op.create_index(
        "ix_tickets_paused",
        "tickets",
        ["paused_at"],
        unique=False,
        postgresql_where=sa.text("paused_at IS NOT NULL"),
        sqlite_where=sa.text("paused_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_tickets_paused", table_name="tickets")
    for name, _, _ in BOARD_INDEXES:
        for scope in ("community", "street"):
            op.drop_index(f"ix_tickets_{name}_by_{scope}", table_name="tickets")
    op.drop_index(op.f("ix_staff_accounts_responder_id"), table_name="staff_accounts")
    op.drop_table("staff_accounts")
