"""responder_contacts: one account per responder and channel (uq_responder_contacts_responder_channel), so a
second account never replaces a responder's binding silently

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 12:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("responder_contacts", schema=None) as batch_op:
        batch_op.create_unique_constraint(
            "uq_responder_contacts_responder_channel", ["responder_id", "channel"]
        )


def downgrade() -> None:
    with op.batch_alter_table("responder_contacts", schema=None) as batch_op:
        batch_op.drop_constraint("uq_responder_contacts_responder_channel", type_="unique")
