"""The staff queue query (TicketService.queue) on PostgreSQL with a million tickets.

Builds a fresh ``minhu_bench_queue_*`` database (Alembic migrations, an org of 1 street × 3 communities
× 10 grids loaded with tickets.org.load_org), fills it with tickets straight in SQL
(INSERT … SELECT generate_series, not through the service): 2 years of history, ~3 % still open
(created/dispatched/accepted, mostly the last few weeks plus a thin tail of stuck old ones), the rest
closed or cancelled. Then VACUUM ANALYZE and time, over ≥ 500 runs spread over the communities:

  * service  — ``await service.queue(staff_id)`` of each community's staff (the real code path: one unit
               of work, the staff lookup, the tickets query, 50 ORM objects);
  * raw SQL  — the very statement and parameters ``queue()`` sent (captured from the engine), run on a
               plain asyncpg connection.

It prints p50/p95/p99 and EXPLAIN (ANALYZE, BUFFERS) of one run, also times the street staff's queue
(the ``street_id`` branch of ``queue()``), and unless --no-try-index re-times everything with a
suggested partial index added to this scratch database only. The database is dropped at the end
unless --keep.

    .venv/bin/python benchmarks/queue_query.py                  # 1,000,000 tickets, 600 runs a variant
    .venv/bin/python benchmarks/queue_query.py -n 200000 --runs 300 --keep
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
from alembic import command
from sqlalchemy import event, select

from tickets import crypto
from tickets.catalogue import Catalogue, Role
from tickets.db import alembic_config, create_engine, session_factory, unit_of_work
from tickets.models import Responder
from tickets.org import CommunitySpec, CompoundSpec, GridSpec, OrgSpec, ResponderSpec, StreetSpec, load_org
from tickets.service import TicketService

# isort: split
# benchmarks/common.py: the script's own folder is first on sys.path
from common import DEFAULT_PG, TEXTS, pct, pg_admin, pg_dsn, pg_url, process_cpu

# Phones are encrypted at rest (tickets.crypto): a throwaway key for the database this script fills.
BENCH_KEYRING = crypto.Keyring(crypto.DataKey(bytes(32)))
crypto.configure(BENCH_KEYRING)
OPEN = ("created", "dispatched", "accepted")
NOTES = (
    "已上门处理完毕,居民表示满意。",
    "已协调物业解决。",
    "已电话回访,问题已解决。",
    "已转相关部门办理并反馈。",
)
# How the tickets spread over the communities (largest first) and the categories.
COMMUNITY_WEIGHTS = (0.45, 0.35, 0.20)
CATEGORY_WEIGHTS = {
    "eldercare": 0.22,
    "property": 0.18,
    "environment": 0.16,
    "facility_repair": 0.14,
    "certificate": 0.12,
    "neighbor_dispute": 0.08,
    "social_assistance": 0.06,
    "legal_aid": 0.04,
}
SUGGESTED = (
    "CREATE INDEX ix_bench_queue_open ON tickets (community_id, resolve_by, id) "
    "WHERE status IN ('created', 'dispatched', 'accepted')",
    "CREATE INDEX ix_bench_queue_open_street ON tickets (street_id, resolve_by, id) "
    "WHERE status IN ('created', 'dispatched', 'accepted')",
)


# ---------------------------------------------------------------------------------------------- setup


def org_spec(communities: int, grids: int) -> OrgSpec:
    """1 street, `communities` × `grids` grids with a compound each, and every role in every community."""
    names = ["安居", "锦江", "和平", "幸福", "民主", "光明", "新华", "团结", "建设", "振兴"]
    specs, responders = [], [ResponderSpec(code="street-staff", name="何主任", role=Role.STREET_STAFF)]
    for c in range(communities):
        code = f"c{c + 1}"
        grid_codes = [f"{code}-g{g + 1}" for g in range(grids)]
        specs.append(
            CommunitySpec(
                code=code,
                name=f"{names[c % len(names)]}{c // len(names) or ''}社区",
                grids=[
                    GridSpec(
                        code=g,
                        name=f"第{i + 1}网格",
                        households=400,
                        compounds=[CompoundSpec(code=f"{g}-p", name=f"{code}小区{i + 1}", buildings=8)],
                    )
                    for i, g in enumerate(grid_codes)
                ],
            )
        )
        responders += [
            ResponderSpec(code=f"{code}-staff", name="社区干部", role=Role.COMMUNITY_STAFF, community=code),
            ResponderSpec(code=f"{code}-sw", name="社工", role=Role.SOCIAL_WORKER, community=code),
            ResponderSpec(code=f"{code}-law", name="律师", role=Role.LEGAL_ADVISER, community=code),
            ResponderSpec(code=f"{code}-med", name="调解员", role=Role.MEDIATOR, community=code),
            ResponderSpec(
                code=f"{code}-prop", name="物业", role=Role.PROPERTY_CONTACT, community=code, grids=grid_codes
            ),
        ]
        for i, g in enumerate(grid_codes):
            responders += [
                ResponderSpec(
                    code=f"{g}-gw", name="网格员", role=Role.GRID_WORKER, community=code, grids=[g]
                ),
                ResponderSpec(
                    code=f"{g}-vol",
                    name="志愿者",
                    role=Role.PARTY_VOLUNTEER,
                    community=code,
                    grids=[g],
                    contacts={"telegram": str(100000 + c * 100 + i)},
                ),
            ]
    return OrgSpec(
        streets=[StreetSpec(code="minan", name="民安街道", communities=specs, responders=responders)]
    )


async def load(url: str, communities: int, grids: int) -> None:
    engine = create_engine(url)
    try:
        async with unit_of_work(session_factory(engine)) as session:
            await load_org(session, org_spec(communities, grids), Catalogue.load())
    finally:
        await engine.dispose()


def weights(n: int) -> list[float]:
    base = list(COMMUNITY_WEIGHTS[:n]) if n <= len(COMMUNITY_WEIGHTS) else [1.0] * n
    total = sum(base)
    return [w / total for w in base]


def case_pick(expr: str, cumulative: list[float], values: list[str]) -> str:
    """CASE WHEN expr < c1 THEN v1 WHEN expr < c2 THEN v2 … ELSE vn END."""
    whens = " ".join(
        f"WHEN {expr} < {c!r} THEN {v}" for c, v in zip(cumulative[:-1], values[:-1], strict=True)
    )
    return f"CASE {whens} ELSE {values[-1]} END"


def sql_text_array(values: tuple[str, ...]) -> str:
    return "ARRAY[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


async def fill(
    conn: asyncpg.Connection, n: int, residents_per_grid: int, open_share: float, years: float, now: datetime
) -> dict[str, float]:
    """Residents, then n tickets in one INSERT … SELECT. Returns the seconds each step took."""
    timings: dict[str, float] = {}
    grids = await conn.fetch("SELECT g.id, g.community_id FROM grids g ORDER BY g.community_id, g.id")
    communities = sorted({g["community_id"] for g in grids})
    street_of = {r["id"]: r["street_id"] for r in await conn.fetch("SELECT id, street_id FROM communities")}
    grids_of = {c: [g["id"] for g in grids if g["community_id"] == c] for c in communities}
    responders = await conn.fetch(
        "SELECT id, community_id, role FROM responders WHERE community_id IS NOT NULL"
    )
    workers_of = {c: [r["id"] for r in responders if r["community_id"] == c] for c in communities}
    grid_ids = [g["id"] for g in grids]

    started = time.perf_counter()
    # Resident k lives in grid k % len(grids): a ticket from grid i is filed by one of that grid's residents.
    await conn.execute(
        """
        INSERT INTO residents (channel_id, display_name, phone, community_id, grid_id, created_at)
        SELECT 'bench:' || k, '居民' || k, $4,
               (SELECT community_id FROM grids WHERE id = ($1::int[])[1 + k % cardinality($1::int[])]),
               ($1::int[])[1 + k % cardinality($1::int[])],
               $2::timestamptz - make_interval(days => k % 700)
        FROM generate_series(0, $3 - 1) AS k
        """,
        grid_ids,
        now,
        residents_per_grid * len(grid_ids),
        BENCH_KEYRING.encrypt("+8613900000000"),  # one encrypted phone for all: the row size is what counts
    )
    first_resident = await conn.fetchval("SELECT min(id) FROM residents")
    timings["residents"] = time.perf_counter() - started

    catalogue = Catalogue.load()
    categories = list(CATEGORY_WEIGHTS)
    cat_cum = [sum(list(CATEGORY_WEIGHTS.values())[: i + 1]) for i in range(len(categories))]
    respond_hours = [
        c.respond_within.amount * (1 if c.respond_within.unit == "h" else 24)
        for c in (catalogue.get(k) for k in categories)
    ]
    # working days → calendar days (weekends), roughly
    resolve_hours = [
        c.resolve_within.amount * (1 if c.resolve_within.unit == "h" else 24 * 1.4)
        for c in (catalogue.get(k) for k in categories)
    ]
    modes = [f"'{catalogue.get(k).dispatch.value}'" for k in categories]
    comm_w = weights(len(communities))
    comm_cum = [sum(comm_w[: i + 1]) for i in range(len(communities))]
    gpc = [len(grids_of[c]) for c in communities]
    recent = 0.04  # the newest 4 % of tickets (about the last month of two years) hold 90 % of the open ones
    p_recent = min(1.0, 0.9 * open_share / recent)
    p_old = (open_share - recent * p_recent) / (1 - recent)

    c_idx = case_pick("r_comm", comm_cum, [str(i) for i in range(len(communities))])
    cat_idx = case_pick("r_cat", cat_cum, [str(i + 1) for i in range(len(categories))])
    pick_grid = (
        "CASE c "
        + " ".join(
            f"WHEN {i} THEN ('{{{','.join(map(str, grids_of[c]))}}}'::int[])"
            f"[1 + floor(r_grid * {gpc[i]})::int]"
            for i, c in enumerate(communities)
        )
        + " END"
    )
    pick_worker = (
        "CASE c "
        + " ".join(
            f"WHEN {i} THEN ('{{{','.join(map(str, workers_of[c]))}}}'::int[])"
            f"[1 + floor(r_who * {len(workers_of[c])})::int]"
            for i, c in enumerate(communities)
        )
        + " END"
    )
    community_id = "('{" + ",".join(map(str, communities)) + "}'::int[])[1 + c]"
    street_id = "('{" + ",".join(str(street_of[c]) for c in communities) + "}'::int[])[1 + c]"
    grid_pos = "(array_position(('{" + ",".join(map(str, grid_ids)) + "}'::int[]), grid_id) - 1)"
    status = (
        f"CASE WHEN (g > {n * (1 - recent)} AND r_open < {p_recent}) OR (g <= {n * (1 - recent)} "
        f"AND r_open < {p_old}) THEN (CASE WHEN r_st < 0.15 THEN 'created' WHEN r_st < 0.5 THEN 'dispatched' "
        "ELSE 'accepted' END) ELSE (CASE WHEN r_st < 0.04 THEN 'cancelled' ELSE 'closed' END) END"
    )
    columns = {
        "number": "'MH-' || to_char(created_at AT TIME ZONE 'Asia/Shanghai', 'YYYYMMDD') || '-' || lpad(g::text, 7, '0')",
        "resident_id": f"{first_resident} + {grid_pos} + {len(grid_ids)} * floor(r_who * {residents_per_grid})::int",
        "category": f"(ARRAY[{', '.join(repr(c) for c in categories)}])[k]",
        "text": "text",
        "street_id": "street_id",
        "community_id": "community_id",
        "grid_id": "grid_id",
        "address": "(1 + g % 12) || '栋' || (1 + g % 6) || '单元' || (101 + g % 30) || '室'",
        "urgency": "CASE WHEN r_urg < 0.05 THEN 'urgent' ELSE 'normal' END",
        "channel": "CASE WHEN r_urg < 0.6 THEN 'telegram' ELSE 'web' END",
        "status": "status",
        "dispatch_mode": f"(ARRAY[{', '.join(modes)}])[k]",
        "assignee_id": f"CASE WHEN status IN ('created', 'cancelled') THEN NULL ELSE {pick_worker} END",
        "level": "CASE WHEN status IN ('created', 'dispatched') AND r_st < 0.02 THEN 1 ELSE 0 END",
        "created_at": "created_at",
        "respond_by": "respond_by",
        "first_respond_by": "respond_by",
        "resolve_by": f"created_at + make_interval(secs => (ARRAY[{', '.join(map(str, resolve_hours))}])[k]"
        " * 3600 * (0.5 + r_urg))",
        "first_dispatched_at": "CASE WHEN status <> 'created' THEN created_at + interval '3 minutes' END",
        "first_accepted_at": "CASE WHEN status IN ('accepted', 'closed') THEN created_at + interval '2 hours' END",
        "responded_in_time": "CASE WHEN status IN ('accepted', 'closed') THEN r_st > 0.1 END",
        "resolved_at": "CASE WHEN status = 'closed' THEN created_at + interval '2 days' END",
        "closed_at": "CASE WHEN status = 'closed' THEN created_at + interval '3 days' END",
        "reopen_count": "CASE WHEN r_st > 0.97 THEN 1 ELSE 0 END",
        "contacted": "CASE WHEN status = 'closed' THEN true END",
        "solved": "CASE WHEN status = 'closed' THEN r_st > 0.05 END",
        "rating": "CASE WHEN status <> 'closed' THEN NULL WHEN r_st < 0.8 THEN 'satisfied' "
        "WHEN r_st < 0.95 THEN 'basic' ELSE 'unsatisfied' END",
        "rated_at": "CASE WHEN status = 'closed' THEN created_at + interval '3 days' END",
        "resolution_note": f"CASE WHEN status = 'closed' THEN ({sql_text_array(NOTES)})[1 + g % {len(NOTES)}] END",
        "version": "CASE WHEN status = 'closed' THEN 6 WHEN status = 'accepted' THEN 3 ELSE 2 END",
    }
    # The schema moves on: skip columns it no longer has, and give any new NOT NULL column without a
    # default a plain value of its type (said out loud, so the fill can be taught better).
    table = {
        r["column_name"]: r
        for r in await conn.fetch(
            """SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns
               WHERE table_name = 'tickets'"""
        )
    }
    for name in [c for c in columns if c not in table]:
        print(f"note: tickets.{name} no longer exists; not filled")
        del columns[name]
    plain = {"timestamp with time zone": "created_at", "integer": "0", "bigint": "0", "boolean": "false"}
    for name, column in table.items():
        if name == "id" or name in columns or column["is_nullable"] == "YES" or column["column_default"]:
            continue
        columns[name] = plain.get(column["data_type"], "''")
        print(f"note: new NOT NULL column tickets.{name} ({column['data_type']}) filled with {columns[name]}")
    sql = f"""
    INSERT INTO tickets ({", ".join(columns)})
    SELECT {", ".join(columns.values())}
    FROM (
        SELECT *, {status} AS status, {pick_grid} AS grid_id, {community_id} AS community_id,
               {street_id} AS street_id,
               created_at + make_interval(hours => (ARRAY[{", ".join(map(str, respond_hours))}])[k]) AS respond_by
        FROM (
            SELECT g, r_grid, r_open, r_st, r_urg, r_who, created_at, {c_idx} AS c, {cat_idx} AS k,
                   ({sql_text_array(TEXTS)})[1 + floor(r_text * {len(TEXTS)})::int] || '(' || g || ')' AS text
            FROM (
                SELECT g, random() AS r_comm, random() AS r_grid, random() AS r_cat, random() AS r_open,
                       random() AS r_st, random() AS r_urg, random() AS r_who, random() AS r_text,
                       $1::timestamptz - make_interval(secs => ({n} - g) * {years * 365 * 86400 / n}
                                                               + random() * 600) AS created_at
                FROM generate_series(1, {n}) AS g
            ) raw
        ) picked
    ) t
    """
    # The migrated secondary indexes are dropped for the bulk insert and rebuilt, from their own
    # definitions, right after it (faster than maintaining them row by row); constraints stay.
    indexes = await conn.fetch(
        """SELECT indexname, indexdef FROM pg_indexes i WHERE tablename = 'tickets'
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)"""
    )
    started = time.perf_counter()
    async with conn.transaction():
        for index in indexes:
            await conn.execute(f'DROP INDEX "{index["indexname"]}"')
        await conn.execute("SELECT setseed(0.42)")
        await conn.execute(sql, now)
    timings["tickets"] = time.perf_counter() - started
    started = time.perf_counter()
    await conn.execute("SET maintenance_work_mem = '512MB'")
    for index in indexes:
        await conn.execute(index["indexdef"])
    timings[f"{len(indexes)} indexes"] = time.perf_counter() - started
    started = time.perf_counter()
    await conn.execute("VACUUM ANALYZE")
    timings["vacuum analyze"] = time.perf_counter() - started
    return timings


# ---------------------------------------------------------------------------------------------- timing


Timings = dict[str, dict[str, list[tuple[float, float]]]]  # path → who → [(wall seconds, client CPU seconds)]
Row = tuple[str, str, str, int, float, float, float, float, float, float]


class Capture:
    """The tickets statement (and its parameters) that queue() sends, caught at the cursor."""

    def __init__(self, engine: Any) -> None:
        self.last: tuple[str, tuple[Any, ...]] | None = None
        event.listen(engine.sync_engine, "before_cursor_execute", self._on)

    def _on(
        self, _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool
    ) -> None:
        if "FROM tickets" in statement and "ORDER BY tickets.resolve_by" in statement:
            self.last = (statement, tuple(parameters))


async def time_variant(
    service: TicketService,
    raw: asyncpg.Connection,
    staff: list[tuple[str, int]],
    runs: int,
    captured: dict[int, tuple[str, tuple[Any, ...]]],
) -> Timings:
    """runs calls of queue() and runs of the raw statement, round-robin over the staff members."""
    out: Timings = {"service": {}, "raw SQL": {}}
    for label, _ in staff:
        out["service"][label] = []
        out["raw SQL"][label] = []
    for i in range(runs):
        label, staff_id = staff[i % len(staff)]
        started, cpu = time.perf_counter(), time.process_time()
        rows = await service.queue(staff_id)
        out["service"][label].append((time.perf_counter() - started, time.process_time() - cpu))
        statement, params = captured[staff_id]
        started, cpu = time.perf_counter(), time.process_time()
        raw_rows = await raw.fetch(statement, *params)
        out["raw SQL"][label].append((time.perf_counter() - started, time.process_time() - cpu))
        if len(rows) != len(raw_rows):
            raise RuntimeError(f"queue() returned {len(rows)} rows but its SQL {len(raw_rows)}")
    return out


async def measure(
    url: str, server_dsn: str, runs: int, title: str
) -> tuple[Timings, dict[tuple[str, str], float]]:
    engine = create_engine(url)
    capture = Capture(engine)
    raw = await asyncpg.connect(server_dsn)
    try:
        service = TicketService(session_factory(engine))
        async with unit_of_work(service.sessions) as session:
            rows = (
                await session.execute(
                    select(Responder.id, Responder.code, Responder.role)
                    .where(Responder.role.in_([Role.COMMUNITY_STAFF, Role.STREET_STAFF]))
                    .order_by(Responder.id)
                )
            ).all()
        communities = [
            (f"community {code.removesuffix('-staff')}", rid)
            for rid, code, role in rows
            if role == Role.COMMUNITY_STAFF
        ]
        street = [("street staff", rid) for rid, _code, role in rows if role == Role.STREET_STAFF]
        captured: dict[int, tuple[str, tuple[Any, ...]]] = {}
        for _, staff_id in communities + street:  # warm-up: pool, compiled cache, prepared statements
            for _ in range(8):
                await service.queue(staff_id)
                assert capture.last is not None
                captured[staff_id] = capture.last
                statement, params = captured[staff_id]
                await raw.fetch(statement, *params)
        print(f"[{title}] timing {runs} runs (load average {os.getloadavg()[0]:.2f}) ...", flush=True)
        server: dict[tuple[str, str], float] = {}
        results: Timings = {}
        for batch, who, count in (
            ("all communities", communities, runs),
            ("street staff", street, max(50, runs // 5)),
        ):
            before = await backend_cpu(raw)
            timings = await time_variant(service, raw, who, count, captured)
            after = await backend_cpu(raw)
            used = {pid: after[pid] - before.get(pid, after[pid]) for pid in after}
            raw_pid = raw.get_server_pid()
            server["raw SQL", batch] = used.get(raw_pid, float("nan")) / count
            server["service", batch] = sum(v for pid, v in used.items() if pid != raw_pid) / count
            for kind, per_label in timings.items():
                results.setdefault(kind, {}).update(per_label)
        statement, params = captured[communities[0][1]]
        plan = await raw.fetch("EXPLAIN (ANALYZE, BUFFERS) " + statement, *params)
        print(f"\n--- {title}: EXPLAIN (ANALYZE, BUFFERS) of the queue query of {communities[0][0]} ---")
        print("\n".join(r[0] for r in plan))
        statement, params = captured[street[0][1]]
        plan = await raw.fetch("EXPLAIN (ANALYZE, BUFFERS) " + statement, *params)
        print(f"\n--- {title}: EXPLAIN (ANALYZE, BUFFERS) of the street staff's queue query ---")
        print("\n".join(r[0] for r in plan))
        if title == "as migrated":
            shown = tuple(str(p) if isinstance(p, str) else p for p in params)
            print(f"\n--- the statement queue() sends (parameters {shown}) ---\n{statement}")
        return results, server
    finally:
        await raw.close()
        await engine.dispose()


async def backend_cpu(conn: asyncpg.Connection) -> dict[int, float]:
    """CPU seconds used so far by each server process of this database (local server, Linux /proc)."""
    pids = await conn.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend'"
    )
    return {pid: cpu for (pid,) in pids if (cpu := process_cpu(pid)) is not None}


def report(title: str, measured: tuple[Timings, dict[tuple[str, str], float]]) -> list[Row]:
    results, server = measured
    rows = []
    for kind, per_label in results.items():
        community_all = [v for label, vs in per_label.items() if label.startswith("community") for v in vs]
        for label, pairs in [("all communities", community_all), *per_label.items()]:
            wall = [w for w, _ in pairs]
            cpu = sum(c for _, c in pairs) / len(pairs)
            rows.append(
                (
                    title,
                    kind,
                    label,
                    len(wall),
                    pct(wall, 0.5) * 1000,
                    pct(wall, 0.95) * 1000,
                    pct(wall, 0.99) * 1000,
                    max(wall) * 1000,
                    cpu * 1000,
                    server.get((kind, label), float("nan")) * 1000,
                )
            )
    return rows


# ---------------------------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "-n", "--tickets", type=int, default=1_000_000, help="tickets to generate (1,000,000)"
    )
    parser.add_argument(
        "--runs", type=int, default=600, help="timed queue() calls over the communities (600)"
    )
    parser.add_argument("--communities", type=int, default=3)
    parser.add_argument("--grids", type=int, default=10, help="grids per community (10)")
    parser.add_argument("--residents-per-grid", type=int, default=1000)
    parser.add_argument("--open-share", type=float, default=0.03, help="share of open tickets (0.03)")
    parser.add_argument("--years", type=float, default=2.0, help="history the tickets span (2)")
    parser.add_argument("--pg", default=DEFAULT_PG, help=f"PostgreSQL server (default {DEFAULT_PG})")
    parser.add_argument("--keep", action="store_true", help="keep the database (its name is printed)")
    parser.add_argument("--no-try-index", action="store_true", help="skip the run with the suggested index")
    parser.add_argument("--target-ms", type=float, default=20.0, help="p95 target (20 ms)")
    args = parser.parse_args()
    if args.runs < 1 or args.tickets < 1000 or not 0 < args.open_share < 1:
        parser.error("need --runs ≥ 1, --tickets ≥ 1000 and 0 < --open-share < 1")

    name = f"minhu_bench_queue_{uuid.uuid4().hex[:8]}"
    dsn, url = pg_dsn(args.pg, name), pg_url(args.pg, name)
    asyncio.run(pg_admin(args.pg, f'CREATE DATABASE "{name}"'))
    print(f"database {name} ({'kept' if args.keep else 'dropped at the end'})", flush=True)
    rows: list[Row] = []
    try:
        started = time.perf_counter()
        command.upgrade(alembic_config(url), "head")
        asyncio.run(load(url, args.communities, args.grids))
        print(f"migrated and org loaded in {time.perf_counter() - started:.1f}s", flush=True)

        async def do_fill() -> None:
            conn = await asyncpg.connect(dsn)
            try:
                timings = await fill(
                    conn,
                    args.tickets,
                    args.residents_per_grid,
                    args.open_share,
                    args.years,
                    datetime.now(UTC),
                )
                total = sum(timings.values())
                print(
                    f"filled in {total:.1f}s (" + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()) + ")"
                )
                stats = await conn.fetch(
                    """SELECT c.code, count(*) AS tickets,
                              count(*) FILTER (WHERE t.status = ANY($1::text[])) AS open
                       FROM tickets t JOIN communities c ON c.id = t.community_id
                       GROUP BY c.code ORDER BY c.code""",
                    list(OPEN),
                )
                by_status = await conn.fetch(
                    "SELECT status, count(*) FROM tickets GROUP BY 1 ORDER BY 2 DESC"
                )
                size = await conn.fetchval("SELECT pg_size_pretty(pg_total_relation_size('tickets'))")
                span = await conn.fetchrow("SELECT min(created_at), max(created_at) FROM tickets")
                print(
                    f"tickets: {sum(r['tickets'] for r in stats):,} ({size} with indexes), created "
                    f"{span[0]:%Y-%m-%d} … {span[1]:%Y-%m-%d}; by status: "
                    + ", ".join(f"{r['status']} {r['count']:,}" for r in by_status)
                )
                for r in stats:
                    print(f"  community {r['code']}: {r['tickets']:,} tickets, {r['open']:,} open")
            finally:
                await conn.close()

        asyncio.run(do_fill())
        rows += report("as migrated", asyncio.run(measure(url, dsn, args.runs, "as migrated")))
        if not args.no_try_index:

            async def add_index() -> None:
                conn = await asyncpg.connect(dsn)
                try:
                    for sql in SUGGESTED:
                        await conn.execute(sql)
                    await conn.execute("ANALYZE tickets")
                finally:
                    await conn.close()

            started = time.perf_counter()
            asyncio.run(add_index())
            print(
                f"\nsuggested indexes built in {time.perf_counter() - started:.1f}s:\n  "
                + ";\n  ".join(SUGGESTED)
            )
            rows += report(
                "+ suggested index", asyncio.run(measure(url, dsn, args.runs, "+ suggested index"))
            )
    finally:
        if not args.keep:
            asyncio.run(pg_admin(args.pg, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    print(
        f"\nstaff queue at {args.tickets:,} tickets ({time.strftime('%Y-%m-%d %H:%M')}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f})"
    )
    header = (
        f"{'variant':<18} {'path':<8} {'who':<16} {'runs':>5} "
        f"{'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'max ms':>7} {'cli CPU':>7} {'pg CPU':>7}"
    )
    print(header)
    print("-" * len(header))
    for title, kind, label, count, p50, p95, p99, top, cpu, srv in rows:
        shown = "-" if math.isnan(srv) else f"{srv:.2f}"
        print(
            f"{title:<18} {kind:<8} {label:<16} {count:>5} {p50:>7.2f} {p95:>7.2f} {p99:>7.2f} {top:>7.2f} "
            f"{cpu:>7.2f} {shown:>7}"
        )
    print(
        "cli CPU / pg CPU: mean CPU ms per call of the benchmark process / of the PostgreSQL server processes"
        " serving it (per batch: all communities, street staff): the cost of a call, whatever else runs."
    )
    for title, kind, label, *figures in rows:
        if label == "all communities":
            p95 = figures[2]
            verdict = "MET" if p95 <= args.target_ms else "NOT met"
            print(f"target p95 ≤ {args.target_ms:g} ms ({title}, {kind}): {p95:.2f} ms -> {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
