"""ticket_rollup (per day × community × grid × category) and ticket_rollup_community (per day × community):
the figures page's counts (tickets.rollup_table), kept by triggers on tickets in
the transactions that change them; backfilled from the tickets already stored. And two indexes on tickets:
the partial index of unsettled tickets (open, or live and never accepted) the clock-dependent counts read,
and ix_tickets_times, which holds every column the figures' times and buckets read.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNSETTLED = (
    "status IN ('created', 'dispatched', 'accepted') OR (first_accepted_at IS NULL AND status <> 'cancelled')"
)
TIMES_INDEX_COLUMNS = (
    "created_at", "street_id", "community_id", "grid_id", "category", "assignee_id", "status",
    "first_dispatched_at", "first_accepted_at", "resolved_at",
)  # fmt: skip
KEYS = ("day", "street_id", "community_id", "grid_key", "category")
# The same counts per day and community only (a street's 6-month series: ~550 rows instead of ~40,000).
TABLES = {"ticket_rollup": KEYS, "ticket_rollup_community": KEYS[:3]}
STATUSES = ("created", "dispatched", "accepted", "resolved", "closed", "cancelled")


def _conditions(r: str, true: str) -> dict[str, str]:
    """Each count column and the condition a ticket row `r` meets to count in it (tickets.metrics' own
    definitions, frozen here as SQL; `true` is how the dialect tests a boolean)."""
    live = f"{r}.status <> 'cancelled'"
    found = {"total": "1 = 1"}
    found |= {f"status_{s}": f"{r}.status = '{s}'" for s in STATUSES}
    accepted = f"{live} AND {r}.first_accepted_at IS NOT NULL"
    return found | {
        "received": live,
        "dispatched": f"{live} AND {r}.first_dispatched_at IS NOT NULL",
        "accepted": accepted,
        "accepted_in_time": f"{accepted} AND {r}.responded_in_time {true}",
        "resolved": f"{live} AND {r}.status IN ('resolved', 'closed')",
        "rated": f"{live} AND {r}.rating IS NOT NULL",
        "satisfied": f"{live} AND {r}.rating = 'satisfied'",
        "basic": f"{live} AND {r}.rating = 'basic'",
        "unsatisfied": f"{live} AND {r}.rating = 'unsatisfied'",
        "reopened": f"{live} AND {r}.reopen_count > 0",
        "ever_resolved": (
            f"{live} AND ({r}.resolved_at IS NOT NULL OR {r}.reopen_count > 0 OR {r}.status = 'closed')"
        ),
    }


def _keys(r: str, dialect: str) -> list[str]:
    if dialect == "postgresql":
        day = f"({r}.created_at AT TIME ZONE 'Asia/Shanghai')::date"
    else:  # SQLite stores UTC text; Beijing time is UTC+8 all year
        day = f"date({r}.created_at, '+8 hours')"
    return [day, f"{r}.street_id", f"{r}.community_id", f"COALESCE({r}.grid_id, 0)", f"{r}.category"]


def _upsert(r: str, sign: str, dialect: str, true: str) -> str:
    """Adds row `r`'s contribution, times `sign` (1 or -1), to its row of each roll-up table."""
    counts = _conditions(r, true)
    statements = []
    for table, keys in TABLES.items():
        values = _keys(r, dialect)[: len(keys)]
        values += [f"CASE WHEN {c} THEN {sign} ELSE 0 END" for c in counts.values()]
        target = f"{table}." if dialect == "postgresql" else ""
        updates = ", ".join(f"{name} = {target}{name} + excluded.{name}" for name in counts)
        statements.append(
            f"INSERT INTO {table} ({', '.join((*keys, *counts))}) VALUES ({', '.join(values)}) "
            f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
        )
    return "; ".join(statements)


# What the triggers watch: a change elsewhere (text, a note's version bump) leaves the roll-up alone.
WATCHED = (
    "created_at", "street_id", "community_id", "grid_id", "category", "status", "first_dispatched_at",
    "first_accepted_at", "responded_in_time", "rating", "reopen_count", "resolved_at",
)  # fmt: skip


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    true = "IS TRUE" if dialect == "postgresql" else "= 1"
    counts = _conditions("tickets", true)
    for table, keys in TABLES.items():
        places: list[sa.schema.SchemaItem] = [
            sa.Column("day", sa.Date(), nullable=False),
            sa.Column("street_id", sa.Integer(), nullable=False),
            sa.Column("community_id", sa.Integer(), nullable=False),
        ]
        if "category" in keys:
            places += [
                sa.Column("grid_key", sa.Integer(), nullable=False),
                sa.Column("category", sa.String(length=32), nullable=False),
            ]
        op.create_table(
            table,
            *places,
            *(sa.Column(name, sa.Integer(), nullable=False) for name in counts),
            sa.PrimaryKeyConstraint(*keys, name=op.f(f"pk_{table}")),
        )
    op.create_index(
        "ix_tickets_unsettled_created",
        "tickets",
        ["created_at"],
        postgresql_where=sa.text(UNSETTLED),
        sqlite_where=sa.text(UNSETTLED),
    )
    op.create_index("ix_tickets_times", "tickets", list(TIMES_INDEX_COLUMNS))
    sums = ", ".join(f"SUM(CASE WHEN {c} THEN 1 ELSE 0 END)" for c in counts.values())
    for table, keys in TABLES.items():
        grouped = ", ".join(_keys("tickets", dialect)[: len(keys)])
        op.execute(
            f"INSERT INTO {table} ({', '.join((*keys, *counts))}) "
            f"SELECT {grouped}, {sums} FROM tickets GROUP BY {grouped}"
        )
        if dialect == "postgresql":  # the planner's row counts of the new table (else it guesses a handful)
            op.execute(f"ANALYZE {table}")
    changed = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in WATCHED)
    if dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION ticket_rollup_apply() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            "BEGIN\n"
            f"  IF TG_OP <> 'INSERT' THEN {_upsert('OLD', '-1', dialect, true)}; END IF;\n"
            f"  IF TG_OP <> 'DELETE' THEN {_upsert('NEW', '1', dialect, true)}; END IF;\n"
            "  RETURN NULL;\n"
            "END $$"
        )
        op.execute(
            "CREATE TRIGGER ticket_rollup_insert_delete AFTER INSERT OR DELETE ON tickets "
            "FOR EACH ROW EXECUTE FUNCTION ticket_rollup_apply()"
        )
        op.execute(
            "CREATE TRIGGER ticket_rollup_update AFTER UPDATE ON tickets "
            f"FOR EACH ROW WHEN ({changed}) EXECUTE FUNCTION ticket_rollup_apply()"
        )
    else:
        changed = changed.replace("IS DISTINCT FROM", "IS NOT")
        op.execute(
            "CREATE TRIGGER ticket_rollup_insert AFTER INSERT ON tickets BEGIN "
            f"{_upsert('NEW', '1', dialect, true)}; END"
        )
        op.execute(
            "CREATE TRIGGER ticket_rollup_delete AFTER DELETE ON tickets BEGIN "
            f"{_upsert('OLD', '-1', dialect, true)}; END"
        )
        op.execute(
            f"CREATE TRIGGER ticket_rollup_update AFTER UPDATE ON tickets WHEN {changed} BEGIN "
            f"{_upsert('OLD', '-1', dialect, true)}; {_upsert('NEW', '1', dialect, true)}; END"
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER ticket_rollup_update ON tickets")
        op.execute("DROP TRIGGER ticket_rollup_insert_delete ON tickets")
        op.execute("DROP FUNCTION ticket_rollup_apply()")
    else:
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER ticket_rollup_{name}")
    op.drop_index("ix_tickets_times", table_name="tickets")
    op.drop_index("ix_tickets_unsettled_created", table_name="tickets")
    op.drop_table("ticket_rollup_community")
    op.drop_table("ticket_rollup")
