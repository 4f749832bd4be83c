"""Create+dispatch throughput through the real TicketService.create_ticket (群众点单 → 社区派单).

Every ticket is one call of ``TicketService.create_ticket``, the call the actions and the bot make. It
validates the request, then hands it to the service's group commit: a call made while no create
transaction of this process is in flight starts one at once; calls made meanwhile share the next one.
A transaction reads the residents, the responders and their loads, takes the day's numbers (counter
upsert), and writes tickets (already dispatched), events, offers, outbox rows and the responders'
``last_assigned_at`` with one multi-row statement each. Runs on SQLite (a temp file) and on PostgreSQL
(a fresh ``minhu_bench_*`` database migrated with Alembic), with one worker (every ticket its own
transaction), with N asyncio tasks sharing one service (like one app process under load: their calls
are coalesced), and with N processes of one worker each (one engine each: nothing to coalesce, they
meet only in the database). Then runs ``pgbench`` (select-only and simple-update) on the same server as
the ceiling.

Every database this script creates is dropped (or its temp dir removed) before it exits.

    .venv/bin/python benchmarks/create_dispatch.py                 # everything, 2000 tickets a run
    .venv/bin/python benchmarks/create_dispatch.py -n 500 --backends postgres --modes tasks
    .venv/bin/python benchmarks/create_dispatch.py --backends postgres --modes single --profile 30
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import math
import multiprocessing as mp
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
from alembic import command
from sqlalchemy import event, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tickets import crypto
from tickets.catalogue import Catalogue
from tickets.db import alembic_config, create_engine, session_factory, unit_of_work
from tickets.models import Grid, Resident, Responder, Status, Ticket
from tickets.org import OrgSpec, ResponderSpec, load_org, parse_org
from tickets.service import NewTicket, TicketService

# isort: split
# benchmarks/common.py: the script's own folder is first on sys.path
from common import DEFAULT_PG, REPO, TEXTS, pct, pg_admin, pg_url, process_cpu

DEFAULT_ORG = REPO / "tests" / "fixtures" / "org.yml"
# Tables a run writes; emptied before every timed run so each run starts from the same state.
# Phones are encrypted at rest (tickets.crypto): every process of this script (the workers too) uses this
# throwaway key; the databases it writes are dropped at the end.
crypto.configure(crypto.Keyring(crypto.DataKey(bytes(32))))
RUN_TABLES = ("offers", "outbox", "points_ledger", "ticket_events", "tickets", "ticket_counters")


# ---------------------------------------------------------------------------------------------- setup


def augmented_org(path: Path, catalogue: Catalogue) -> tuple[OrgSpec, list[str]]:
    """The org file, plus one benchmark responder wherever a community has nobody whose role serves a
    category, so that every (community, category) ticket can be dispatched."""
    spec = parse_org(path)
    added: list[str] = []
    for street in spec.streets:
        for community in street.communities:
            mine = [r for r in street.responders if r.community == community.code]
            for category in catalogue.categories.values():
                if any(
                    r.role in category.roles and (not r.categories or category.code in r.categories)
                    for r in mine
                ):
                    continue
                role = category.roles[0]
                responder = ResponderSpec(
                    code=f"bench-{community.code}-{role.value}",
                    name=f"压测{role.value}"[:50],
                    role=role,
                    community=community.code,
                    grids=[g.code for g in community.grids],
                )
                street.responders.append(responder)
                mine.append(responder)
                added.append(f"{responder.code} ({category.code})")
    return spec, added


async def prepare(url: str, org: Path, residents_per_grid: int) -> dict[str, Any]:
    """Load the org, lift every capacity so dispatch never runs out of responders, make residents."""
    catalogue = Catalogue.load()
    spec, added = augmented_org(org, catalogue)
    engine = create_engine(url)
    try:
        sessions = session_factory(engine)
        async with unit_of_work(sessions) as session:
            await load_org(session, spec, catalogue)
            await session.execute(update(Responder).values(capacity=1_000_000, on_duty=True, active=True))
            grids = (await session.scalars(select(Grid).order_by(Grid.id))).all()
            residents = [
                Resident(
                    channel_id=f"bench:{grid.code}:{i}",
                    display_name=f"居民{i}",
                    community_id=grid.community_id,
                    grid_id=grid.id,
                    phone=f"1390000{n:04d}",
                    created_at=_utcnow(),
                )
                for n, (grid, i) in enumerate((g, i) for g in grids for i in range(residents_per_grid))
            ]
            session.add_all(residents)
            await session.flush()
            ids = [r.id for r in residents]
            responders = await session.scalar(select(func.count()).select_from(Responder))
        return {"residents": ids, "grids": len(grids), "responders": responders, "added": added}
    finally:
        await engine.dispose()


def _utcnow() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def plan(residents: list[int], n: int) -> list[NewTicket]:
    """n requests, residents round-robin (so every grid and community) × every category."""
    categories = list(Catalogue.load().categories)
    requests = []
    for i in range(n):
        resident = residents[i % len(residents)]
        category = categories[(i + i // len(residents)) % len(categories)]
        requests.append(
            NewTicket(
                resident_id=resident,
                category=category,
                text=f"{TEXTS[i % len(TEXTS)]}(#{i})",
                address=f"{i % 12 + 1}栋{i % 6 + 1}单元{i % 30 + 101}室",
            )
        )
    return requests


async def reset(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execute(text(f"TRUNCATE {', '.join(RUN_TABLES)} RESTART IDENTITY CASCADE"))
        else:
            for table in RUN_TABLES:
                await conn.execute(text(f"DELETE FROM {table}"))
        await conn.execute(update(Responder).values(last_assigned_at=None))
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE"))


async def outcome(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(Ticket.status, func.count()).group_by(Ticket.status))).all()
    return {str(status): int(count) for status, count in rows}


# ---------------------------------------------------------------------------------------------- runs


@dataclass
class Run:
    seconds: float
    latencies: list[float]
    errors: list[str]
    cpu: float  # client (Python) CPU seconds, all processes together


@dataclass
class Result:
    backend: str
    mode: str
    workers: int
    run: Run
    statuses: dict[str, int] = field(default_factory=dict)
    statements: float | None = None
    per_transaction: float | None = None  # tickets per create transaction (group commit batch size)
    machine_cpu: float = 0.0  # CPU seconds used by the whole machine (client + PostgreSQL + anything else)
    postgres_cpu: float = float("nan")  # CPU seconds used by the server processes of the database
    waits: str = ""  # what the server processes were doing (pg_stat_activity samples)

    @property
    def tickets(self) -> int:
        return len(self.run.latencies)

    @property
    def rate(self) -> float:
        return self.tickets / self.run.seconds if self.run.seconds else 0.0

    def per_ticket_ms(self, seconds: float) -> float:
        return seconds / max(1, self.tickets) * 1000


def machine_busy() -> float:
    """CPU seconds the whole machine has spent busy since boot (Linux /proc/stat); 0 elsewhere."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class Meter:
    """Machine CPU used between start() and stop(), and for PostgreSQL the CPU of the server processes
    serving the benchmark's database and what they were waiting on meanwhile."""

    def __init__(self, server: str, database: str | None) -> None:
        self.sampler = WaitSampler(server, database)

    def start(self) -> None:
        self.sampler.__enter__()
        self.machine = machine_busy()

    def stop(self) -> tuple[float, float]:
        machine = machine_busy() - self.machine
        self.sampler.__exit__()
        return machine, self.sampler.backend_cpu()


class WaitSampler:
    """Samples pg_stat_activity of one database every few ms in a thread of its own: what the benchmark's
    server processes are doing (running, waiting for a lock, waiting for the client to send more), and
    (when the server is local) how much CPU they use."""

    QUERY = """
        SELECT pid, state, coalesce(wait_event_type, 'CPU'), coalesce(wait_event, '-'),
               CASE WHEN wait_event_type = 'Lock' THEN left(regexp_replace(query, '\\s+', ' ', 'g'), 40) END
        FROM pg_stat_activity
        WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'
    """

    def __init__(self, server: str, database: str | None, every: float = 0.01) -> None:
        self.server, self.database, self.every = server, database, every
        self.counts: dict[str, int] = {}
        self.samples = 0
        self.first_cpu: dict[int, float] = {}
        self.last_cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._loop()), daemon=True)

    def __enter__(self) -> WaitSampler:
        if self.database:
            self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    async def _loop(self) -> None:
        conn = await asyncpg.connect(self.server)
        try:
            while not self._stop.is_set():
                for pid, state, kind, wait, query in await conn.fetch(self.QUERY, self.database):
                    cpu = process_cpu(pid)
                    if cpu is not None:
                        self.first_cpu.setdefault(pid, cpu)
                        self.last_cpu[pid] = cpu
                    if state == "idle":
                        continue  # a pooled connection between transactions
                    key = f"{state} / {kind}:{wait}" + (f" [{query}]" if query else "")
                    self.counts[key] = self.counts.get(key, 0) + 1
                self.samples += 1
                await asyncio.sleep(self.every)
        finally:
            await conn.close()
        for pid in self.last_cpu:
            cpu = process_cpu(pid)
            if cpu is not None:
                self.last_cpu[pid] = cpu

    def backend_cpu(self) -> float:
        """CPU seconds the database's server processes used while sampled (nan if not measurable)."""
        if not self.last_cpu:
            return float("nan")
        return sum(self.last_cpu[pid] - self.first_cpu[pid] for pid in self.last_cpu)

    def summary(self, top: int = 6) -> str:
        if not self.samples:
            return ""
        ranked = sorted(self.counts.items(), key=lambda kv: -kv[1])[:top]
        return "; ".join(f"{count / self.samples:.1f} x {key}" for key, count in ranked)


class StatementCounter:
    """SQL statements sent, and create transactions (INSERT INTO tickets statements) among them."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.count = 0
        self.transactions = 0
        event.listen(engine.sync_engine, "before_cursor_execute", self._on)

    def _on(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.count += 1
        if "INSERT INTO TICKETS" in statement.upper():  # the PostgreSQL write is one WITH statement
            self.transactions += 1


async def run_tasks(service: TicketService, requests: list[NewTicket], workers: int) -> Run:
    latencies: list[float] = []
    errors: list[str] = []
    queue = iter(requests)

    async def worker() -> None:
        for request in queue:  # the shared iterator hands each request to exactly one task
            started = time.perf_counter()
            try:
                await service.create_ticket(request)
            except Exception as error:  # a benchmark counts failures instead of stopping
                errors.append(f"{type(error).__name__}: {error}"[:200])
                continue
            latencies.append(time.perf_counter() - started)

    cpu = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return Run(time.perf_counter() - started, latencies, errors, time.process_time() - cpu)


async def in_process(
    url: str,
    requests: list[NewTicket],
    warmup: list[NewTicket],
    workers: int,
    limit: float,
    profile: int | None,
    meter: Meter,
    batch: bool = True,
) -> tuple[Run, tuple[float, float], dict[str, int], tuple[float, float]]:
    engine = create_engine(url)
    try:
        service = TicketService(session_factory(engine))
        if not batch:  # the "unbatched" mode: one ticket a transaction, as a process of one worker does
            service._coalescer.max_batch = 1
        await run_tasks(service, warmup, 1)  # compiled-statement caches, pool connections, plans
        await reset(engine)
        service.forget_reserved_numbers()  # its block came from the counters the reset emptied
        counter = StatementCounter(engine)
        profiler = cProfile.Profile(time.thread_time) if profile else None  # CPU time, not wall
        if profiler:
            profiler.enable()
        meter.start()
        run = await asyncio.wait_for(run_tasks(service, requests, workers), limit)
        busy = meter.stop()
        if profiler:
            profiler.disable()
            print_profile(profiler, profile or 30)
        statements = (counter.count / max(1, len(requests)), len(requests) / max(1, counter.transactions))
        return run, statements, await outcome(engine), busy
    finally:
        await engine.dispose()


def print_profile(profiler: cProfile.Profile, top: int) -> None:
    for key in ("cumulative", "tottime"):
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(key)
        stats.print_stats(top)
        print(f"\n--- cProfile, sorted by {key} (top {top}) ---")
        print("\n".join(line for line in out.getvalue().splitlines() if line.strip())[:20000])


def _child(
    url: str,
    requests: list[NewTicket],
    warmup: list[NewTicket],
    ready: Any,
    go: Any,
    done: Any,
    results: Any,
    tasks: int = 1,
) -> None:
    async def main() -> None:
        # Two connections: the create transaction's, and the short one that reserves a block of numbers
        # (tickets.create.NumberBlocks) while it is open.
        engine = create_engine(url, pool_size=2, max_overflow=0)
        try:
            service = TicketService(session_factory(engine))
            await run_tasks(service, warmup, 1)
            ready.wait()  # everyone warmed up; the parent resets the tables now
            go.wait()
            service.forget_reserved_numbers()  # its block came from the counters the reset emptied
            run = await run_tasks(service, requests, tasks)
            results.put((run.latencies, run.errors, run.cpu))
            done.wait()  # keep the connection (and its server process) until the parent has metered CPU
        finally:
            await engine.dispose()

    asyncio.run(main())


def in_processes(
    url: str,
    requests: list[NewTicket],
    warmup: list[NewTicket],
    workers: int,
    timeout: float,
    meter: Meter,
    tasks: int = 1,
) -> tuple[Run, dict[str, int], tuple[float, float]]:
    ctx = mp.get_context("spawn")
    ready, go, done = (ctx.Barrier(workers + 1) for _ in range(3))
    results = ctx.Queue()
    shares = [requests[i::workers] for i in range(workers)]
    children = [
        ctx.Process(
            target=_child, args=(url, share, warmup[:5], ready, go, done, results, tasks), daemon=True
        )
        for share in shares
    ]
    for child in children:
        child.start()
    try:
        ready.wait(timeout=120)
        asyncio.run(_reset_url(url))
        meter.start()
        go.wait(timeout=60)
        started = time.perf_counter()
        run = Run(0.0, [], [], 0.0)
        for _ in children:
            latencies, errors, cpu = results.get(timeout=timeout)
            run.latencies += latencies
            run.errors += errors
            run.cpu += cpu
        run.seconds = time.perf_counter() - started
        busy = meter.stop()
        done.wait(timeout=60)
        for child in children:
            child.join(timeout=30)
        return run, asyncio.run(_outcome_url(url)), busy
    finally:
        for child in children:
            if child.is_alive():
                child.terminate()


async def _reset_url(url: str) -> None:
    engine = create_engine(url)
    try:
        await reset(engine)
    finally:
        await engine.dispose()


async def _outcome_url(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        return await outcome(engine)
    finally:
        await engine.dispose()


# ---------------------------------------------------------------------------------------------- backends


def pg_parts(server: str) -> dict[str, str]:
    parts = urlsplit(server)
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": str(parts.port or 5432),
        "user": parts.username or "postgres",
        "db": parts.path.lstrip("/") or "postgres",
    }


def run_backend(backend: str, args: argparse.Namespace, results: list[Result]) -> None:
    """Every mode on a database of each schema revision in args.schemas (one: the usual run), the
    revisions run back to back for each mode and in alternating order, so the machine's load weighs on
    both alike."""
    tmps: list[str] = []
    names: list[str] = []
    try:
        urls: dict[str, str] = {}
        infos: dict[str, dict[str, Any]] = {}
        for schema in args.schemas:
            if backend == "sqlite":
                tmps.append(tempfile.mkdtemp(prefix="minhu_bench_"))
                url = f"sqlite+aiosqlite:///{tmps[-1]}/minhu.db"
            else:
                names.append(f"minhu_bench_{uuid.uuid4().hex[:8]}")
                asyncio.run(pg_admin(args.pg, f'CREATE DATABASE "{names[-1]}"'))
                url = pg_url(args.pg, names[-1])
            t0 = time.perf_counter()
            command.upgrade(alembic_config(url), schema)
            info = infos[schema] = asyncio.run(prepare(url, args.org, args.residents_per_grid))
            urls[schema] = url
            print(
                f"[{backend}] schema {schema}: migrated and loaded in {time.perf_counter() - t0:.1f}s: "
                f"{info['grids']} grids, {info['responders']} responders, {len(info['residents'])} residents"
                + (f"; added {', '.join(info['added'])}" if info["added"] else ""),
                flush=True,
            )
        for m, mode in enumerate(args.modes):
            order = args.schemas if m % 2 == 0 else args.schemas[::-1]
            for schema in order:
                url = urls[schema]
                database = names[args.schemas.index(schema)] if names else None
                label = mode if len(args.schemas) == 1 else f"{mode} @{schema}"
                requests = plan(infos[schema]["residents"], args.tickets)
                warmup = plan(infos[schema]["residents"], args.warmup)
                run_mode(backend, mode, label, url, database, requests, warmup, args, results)
    finally:
        for tmp in tmps:
            shutil.rmtree(tmp, ignore_errors=True)
        for name in names:
            asyncio.run(pg_admin(args.pg, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def run_mode(
    backend: str,
    mode: str,
    label: str,
    url: str,
    database: str | None,
    requests: list[NewTicket],
    warmup: list[NewTicket],
    args: argparse.Namespace,
    results: list[Result],
) -> None:
    workers = 1 if mode == "single" else args.workers
    if mode.startswith("procs") and mode != "procs":  # procsKxT: K processes of T tasks each
        procs, tasks = (int(n) for n in mode[len("procs") :].split("x"))
        workers = procs * tasks
    print(f"[{backend}] {label}: {workers} worker(s), {args.tickets} tickets ...", flush=True)
    statements: tuple[float | None, float | None] = (None, None)
    meter = Meter(args.pg, database)
    if mode == "procs":
        run, statuses, busy = in_processes(url, requests, warmup, workers, args.timeout, meter)
    elif mode.startswith("procs"):  # each process's calls batched by its own group commit
        run, statuses, busy = in_processes(url, requests, warmup, procs, args.timeout, meter, tasks)
    else:
        profile = args.profile if (args.profile and mode == args.profile_mode) else None
        run, statements, statuses, busy = asyncio.run(
            in_process(url, requests, warmup, workers, args.timeout, profile, meter, mode != "unbatched")
        )
    result = Result(backend, label, workers, run, statuses, *statements, *busy)
    results.append(result)
    server = (
        ""
        if math.isnan(result.postgres_cpu)
        else f"PostgreSQL CPU {result.per_ticket_ms(result.postgres_cpu):.2f} ms/ticket, "
    )
    print(
        f"[{backend}] {label}: {result.rate:.0f} tickets/s, "
        f"p50 {pct(run.latencies, 0.5) * 1000:.1f} ms, p95 {pct(run.latencies, 0.95) * 1000:.1f} ms, "
        f"client CPU {result.per_ticket_ms(run.cpu):.2f} ms/ticket, {server}"
        + (f"{result.per_transaction:.1f} tickets/transaction, " if result.per_transaction else "")
        + f"machine CPU {result.per_ticket_ms(result.machine_cpu):.2f} ms/ticket, statuses {statuses}"
        + (f", {len(run.errors)} errors e.g. {run.errors[0]}" if run.errors else ""),
        flush=True,
    )
    if meter.sampler.samples:
        result.waits = meter.sampler.summary()
        print(f"[{backend}] {label}: server processes in a transaction, on average: {result.waits}")


# ---------------------------------------------------------------------------------------------- pgbench


def run_pgbench(args: argparse.Namespace) -> list[tuple[str, int, float, float]]:
    """pgbench -S and -N on a scratch database: the server's ceiling for tiny transactions."""
    if shutil.which("pgbench") is None:
        print("pgbench not found: skipped")
        return []
    p = pg_parts(args.pg)
    name = f"minhu_bench_pgbench_{uuid.uuid4().hex[:6]}"
    conn = ["-h", p["host"], "-p", p["port"], "-U", p["user"]]
    rows = []
    asyncio.run(pg_admin(args.pg, f'CREATE DATABASE "{name}"'))
    try:
        subprocess.run(
            ["pgbench", *conn, "-i", "-q", "-s", str(args.pgbench_scale), name],
            check=True,
            capture_output=True,
            timeout=300,
        )
        for flag, label in (("-S", "select-only (-S)"), ("-N", "simple-update (-N)")):
            for clients in args.pgbench_clients:
                threads = min(clients, args.pgbench_threads)
                out = subprocess.run(
                    [
                        "pgbench",
                        *conn,
                        flag,
                        "-c",
                        str(clients),
                        "-j",
                        str(threads),
                        "-T",
                        str(args.pgbench_seconds),
                        "-n",
                        name,
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                    timeout=args.pgbench_seconds + 120,
                ).stdout
                tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
                latency = re.search(r"latency average = ([\d.]+) ms", out)
                rows.append(
                    (
                        label,
                        clients,
                        float(tps.group(1)) if tps else float("nan"),
                        float(latency.group(1)) if latency else float("nan"),
                    )
                )
                print(f"[pgbench] {label} c={clients} j={threads}: {rows[-1][2]:.0f} tps", flush=True)
    finally:
        asyncio.run(pg_admin(args.pg, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    return rows


# ---------------------------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", "--tickets", type=int, default=2000, help="tickets per run (default 2000)")
    parser.add_argument("-w", "--workers", type=int, default=8, help="concurrent workers (default 8)")
    parser.add_argument("--backends", default="sqlite,postgres", help="comma list: sqlite,postgres")
    parser.add_argument(
        "--modes",
        default="single,tasks,procs",
        help="comma list: single (1 task), tasks (N asyncio tasks, one engine), unbatched (N tasks, group"
        " commit off: one ticket a transaction), procs (N processes of 1 task), procsKxT (K processes of T"
        " tasks, e.g. procs2x4)",
    )
    parser.add_argument(
        "--schemas",
        default="head",
        help="comma list of Alembic revisions: every mode runs on a database of each, back to back"
        " (e.g. 0009,head: the roll-up updated in place vs appended deltas)",
    )
    parser.add_argument("--pg", default=DEFAULT_PG, help=f"PostgreSQL server (default {DEFAULT_PG})")
    parser.add_argument(
        "--org", type=Path, default=DEFAULT_ORG, help="org YAML (default tests/fixtures/org.yml)"
    )
    parser.add_argument("--residents-per-grid", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=50, help="untimed tickets before each run (default 50)")
    parser.add_argument("--timeout", type=float, default=600, help="give up on a run after this many seconds")
    parser.add_argument(
        "--profile",
        type=int,
        metavar="TOP",
        default=0,
        help="cProfile the --profile-mode run(s) in-process and print the TOP functions",
    )
    parser.add_argument("--profile-mode", default="single", choices=("single", "tasks"))
    parser.add_argument("--no-pgbench", action="store_true", help="skip the pgbench ceiling")
    parser.add_argument("--pgbench-seconds", type=int, default=10)
    parser.add_argument("--pgbench-scale", type=int, default=10)
    parser.add_argument("--pgbench-clients", default="8", help="comma list of client counts (default 8)")
    parser.add_argument("--pgbench-threads", type=int, default=2)
    args = parser.parse_args()
    args.backends = [b for b in args.backends.split(",") if b]
    args.modes = [m for m in args.modes.split(",") if m]
    args.schemas = [m for m in args.schemas.split(",") if m]
    args.pgbench_clients = [int(c) for c in args.pgbench_clients.split(",") if c]
    modes = {"single", "tasks", "unbatched", "procs"}
    if not set(args.backends) <= {"sqlite", "postgres"} or not all(
        m in modes or re.fullmatch(r"procs\d+x\d+", m) for m in args.modes
    ):
        parser.error("unknown backend or mode")

    load_at_start = os.getloadavg()[0]
    results: list[Result] = []
    for backend in args.backends:
        run_backend(backend, args, results)
    pgbench = [] if args.no_pgbench or "postgres" not in args.backends else run_pgbench(args)

    print(
        f"\ncreate+dispatch through TicketService.create_ticket ({time.strftime('%Y-%m-%d %H:%M')}, "
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, load average at start {load_at_start:.2f})"
    )
    header = (
        f"{'backend':<9} {'mode':<14} {'workers':>7} {'tickets':>7} {'seconds':>8} {'tickets/s':>9} "
        f"{'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'stmts/t':>7} {'t/txn':>5} {'cli CPU':>7} {'pg CPU':>7} "
        f"{'all CPU':>7} {'dispatched':>10} {'errors':>6}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        stmts = f"{r.statements:.1f}" if r.statements is not None else "-"
        per_txn = f"{r.per_transaction:.1f}" if r.per_transaction is not None else "-"
        dispatched = r.statuses.get(Status.DISPATCHED.value, 0)
        pg_cpu = "-" if math.isnan(r.postgres_cpu) else f"{r.per_ticket_ms(r.postgres_cpu):.2f}"
        lat = r.run.latencies
        print(
            f"{r.backend:<9} {r.mode:<14} {r.workers:>7} {r.tickets:>7} {r.run.seconds:>8.2f} {r.rate:>9.0f} "
            f"{pct(lat, 0.5) * 1000:>7.1f} {pct(lat, 0.95) * 1000:>7.1f} {pct(lat, 0.99) * 1000:>7.1f} "
            f"{stmts:>7} {per_txn:>5} {r.per_ticket_ms(r.run.cpu):>7.2f} {pg_cpu:>7} "
            f"{r.per_ticket_ms(r.machine_cpu):>7.2f} "
            f"{dispatched:>10} {len(r.run.errors):>6}"
        )
    print(
        "stmts/t: SQL statements per ticket, t/txn: tickets per create transaction (in-process runs). CPU columns, in ms of CPU per ticket: cli ="
        " the benchmark's Python process(es), pg = the PostgreSQL server processes of the benchmark database,"
        " all = the whole machine (anything else running included)."
    )
    if pgbench:
        print(
            "\npgbench ceiling (same server, scale "
            f"{args.pgbench_scale}, {args.pgbench_seconds}s each, -j {args.pgbench_threads})"
        )
        for label, clients, tps, latency in pgbench:
            print(f"  {label:<20} clients {clients:>2}: {tps:>9.0f} tps  (avg latency {latency:.2f} ms)")
    best = max((r.rate for r in results if r.backend == "postgres"), default=None)
    if best is not None:
        verdict = "MET" if best >= 500 else "NOT met"
        print(f"\ntarget >= 500 create+dispatch/s on PostgreSQL: best {best:.0f}/s -> {verdict}")
    failed = [r for r in results if r.run.errors or r.statuses.get(Status.DISPATCHED.value, 0) != r.tickets]
    for r in failed:
        print(f"warning: {r.backend}/{r.mode}: {len(r.run.errors)} errors, statuses {r.statuses}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
