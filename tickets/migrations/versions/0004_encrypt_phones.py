"""phones encrypted at rest: residents.phone, responders.phone and tickets.contact_phone become TEXT holding
AES-GCM values (tickets.crypto); the plain values already stored are encrypted with the current key

Needs the data key: `minhu db upgrade` configures it (MINHU_DATA_KEY, or the key file in the data folder).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 10:00:00
"""

import re
from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import context, op

from tickets import crypto

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (("residents", "phone"), ("responders", "phone"), ("tickets", "contact_phone"))
# What the app stored before: E.164 phones (normalize_phone). Anything else is neither plain nor ours.
PLAIN_PHONE = re.compile(r"\+?[0-9]{3,20}")
BATCH = 1000


def _rewrite(table: str, name: str, convert: Callable[[str], str]) -> None:
    """Convert every non-null value of the column, in batches by id."""
    if context.is_offline_mode():
        raise RuntimeError("0004 re-encrypts stored phones: run it online (`minhu db upgrade`)")
    raw = sa.table(table, sa.column("id"), sa.column(name, sa.Text()))
    conn = op.get_bind()
    last = None
    while True:
        query = sa.select(raw.c.id, raw.c[name]).where(raw.c[name].is_not(None)).order_by(raw.c.id)
        if last is not None:
            query = query.where(raw.c.id > last)
        rows = conn.execute(query.limit(BATCH)).all()
        for row_id, value in rows:
            new = convert(value)
            if new != value:
                conn.execute(sa.update(raw).where(raw.c.id == row_id).values({name: new}))
        if len(rows) < BATCH:
            return
        last = rows[-1][0]


def _encrypt(value: str) -> str:
    ring = crypto.keyring()
    if ring.key_id_of(value) in ring.key_ids:
        ring.decrypt(value)  # already encrypted (a re-run): it must still read
        return value
    if not PLAIN_PHONE.fullmatch(value):
        raise RuntimeError("a stored phone is neither a plain E.164 number nor encrypted with a known key")
    return ring.encrypt(value)


def upgrade() -> None:
    for table, name in COLUMNS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(
                name, existing_type=sa.String(length=32), type_=sa.Text(), existing_nullable=True
            )
        _rewrite(table, name, _encrypt)


def downgrade() -> None:
    for table, name in COLUMNS:
        _rewrite(table, name, lambda value: crypto.keyring().decrypt(value))
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(
                name, existing_type=sa.Text(), type_=sa.String(length=32), existing_nullable=True
            )
