"""ticket_rollup_delta: the roll-up's triggers append a row per change (+1 for a ticket's new row, -1 for its
old one) instead of updating the day's roll-up rows in place. Those rows were a hot spot: every create of a
community's day updated the same `ticket_rollup_community` row (and its grid × category row) and held the row
lock until COMMIT, so concurrent creating processes queued behind each other (issue 16; measured in
benchmarks/README.md). An append-only table has no shared row to lock. `tickets.rollup.fold` moves the
deltas into the two roll-up tables (the sweeper runs it); readers sum the roll-up and the deltas not yet
folded, so the figures stay exact in between.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28 17:30:00
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _rollup_0008() -> ModuleType:
    """Migration 0008, whose count definitions (and, to go back, triggers) this one reuses."""
    spec = importlib.util.spec_from_file_location(
        "minhu_migration_0008", Path(__file__).with_name("0008_ticket_rollup.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _append(m: ModuleType, r: str, sign: str, dialect: str, true: str) -> str:
    """Appends row `r`'s contribution, times `sign` (1 or -1), to ticket_rollup_delta."""
    counts = m._conditions(r, true)
    values = [*m._keys(r, dialect), *(f"CASE WHEN {c} THEN {sign} ELSE 0 END" for c in counts.values())]
    return f"INSERT INTO ticket_rollup_delta ({', '.join((*m.KEYS, *counts))}) VALUES ({', '.join(values)})"


def _fold_sql(m: ModuleType, true: str) -> list[str]:
    """Every delta into the roll-up tables, then none left (run in one transaction: downgrade only)."""
    counts = list(m._conditions("t", true))
    statements = []
    for table, keys in m.TABLES.items():
        keys_sql = ", ".join(keys)
        updates = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in counts)
        statements.append(
            f"INSERT INTO {table} ({keys_sql}, {', '.join(counts)}) "
            f"SELECT {keys_sql}, {', '.join(f'SUM({c})' for c in counts)} FROM ticket_rollup_delta "
            f"WHERE 1 = 1 GROUP BY {keys_sql} ON CONFLICT ({keys_sql}) DO UPDATE SET {updates}"
        )
    return [*statements, "DELETE FROM ticket_rollup_delta"]


def upgrade() -> None:
    m = _rollup_0008()
    dialect = op.get_bind().dialect.name
    true = "IS TRUE" if dialect == "postgresql" else "= 1"
    counts = m._conditions("tickets", true)
    # No key, no index: rows are only appended, read in full (a few thousand between folds) and deleted.
    op.create_table(
        "ticket_rollup_delta",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("street_id", sa.Integer(), nullable=False),
        sa.Column("community_id", sa.Integer(), nullable=False),
        sa.Column("grid_key", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in counts),
    )
    if dialect == "postgresql":
        # The same function name: 0008's triggers (and their WHEN) call it; only what it writes changes.
        op.execute(
            "CREATE OR REPLACE FUNCTION ticket_rollup_apply() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            "BEGIN\n"
            f"  IF TG_OP <> 'INSERT' THEN {_append(m, 'OLD', '-1', dialect, true)}; END IF;\n"
            f"  IF TG_OP <> 'DELETE' THEN {_append(m, 'NEW', '1', dialect, true)}; END IF;\n"
            "  RETURN NULL;\n"
            "END $$"
        )
        return
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in m.WATCHED)
    for name in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER ticket_rollup_{name}")
    op.execute(
        f"CREATE TRIGGER ticket_rollup_insert AFTER INSERT ON tickets BEGIN "
        f"{_append(m, 'NEW', '1', dialect, true)}; END"
    )
    op.execute(
        f"CREATE TRIGGER ticket_rollup_delete AFTER DELETE ON tickets BEGIN "
        f"{_append(m, 'OLD', '-1', dialect, true)}; END"
    )
    op.execute(
        f"CREATE TRIGGER ticket_rollup_update AFTER UPDATE ON tickets WHEN {changed} BEGIN "
        f"{_append(m, 'OLD', '-1', dialect, true)}; {_append(m, 'NEW', '1', dialect, true)}; END"
    )


def downgrade() -> None:
    m = _rollup_0008()
    dialect = op.get_bind().dialect.name
    true = "IS TRUE" if dialect == "postgresql" else "= 1"
    if dialect == "postgresql":
        op.execute("LOCK TABLE ticket_rollup_delta IN EXCLUSIVE MODE")  # no delta appended meanwhile
    for statement in _fold_sql(m, true):
        op.execute(statement)
    if dialect == "postgresql":
        op.execute(
            "CREATE OR REPLACE FUNCTION ticket_rollup_apply() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            "BEGIN\n"
            f"  IF TG_OP <> 'INSERT' THEN {m._upsert('OLD', '-1', dialect, true)}; END IF;\n"
            f"  IF TG_OP <> 'DELETE' THEN {m._upsert('NEW', '1', dialect, true)}; END IF;\n"
            "  RETURN NULL;\n"
            "END $$"
        )
    else:
        changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in m.WATCHED)
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER ticket_rollup_{name}")
        op.execute(
            "CREATE TRIGGER ticket_rollup_insert AFTER INSERT ON tickets BEGIN "
            f"{m._upsert('NEW', '1', dialect, true)}; END"
        )
        op.execute(
            "CREATE TRIGGER ticket_rollup_delete AFTER DELETE ON tickets BEGIN "
            f"{m._upsert('OLD', '-1', dialect, true)}; END"
        )
        op.execute(
            f"CREATE TRIGGER ticket_rollup_update AFTER UPDATE ON tickets WHEN {changed} BEGIN "
            f"{m._upsert('OLD', '-1', dialect, true)}; {m._upsert('NEW', '1', dialect, true)}; END"
        )
    op.drop_table("ticket_rollup_delta")
