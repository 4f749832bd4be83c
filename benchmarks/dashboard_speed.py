"""The dashboard's server time at a million tickets on PostgreSQL, and live updates to many open dashboards.

Builds the ``minhu_bench_queue_*``-style database of queue_query.py (same org, same INSERT … SELECT fill:
2 years, ~3 % open) under the name ``minhu_bench_dash_*``, adds staff accounts, and serves the REAL dashboard
(dashboard.app.make_app over TicketService) on a loopback port (aiohttp's TestServer: a real server and
socket; the client is aiohttp's, in the same process). Then:

  * pages — GET the queue page (community staff of each community, and the street staff), a ticket page
    (random open tickets of the staff's community) and the figures page for the current month; the server
    time of each request is measured in the app (an outermost middleware: handler + template + the
    domain's queries) and the client time beside it. p50/p95/p99 against the issue's targets
    (queue ≤ 30 ms, ticket ≤ 30 ms, figures ≤ 300 ms at p95).
  * live — N clients (default 200) keep the live-updates stream (server-sent events) of a signed-in staff
    member open; a burst of ticket changes made through TicketService (new tickets in that community) must
    reach every client: each client's missing ticket numbers are counted as lost events.

The database is dropped at the end unless --keep (then --database NAME reuses it and skips the fill).

    .venv/bin/python benchmarks/dashboard_speed.py                      # 1,000,000 tickets, 300 runs a page
    .venv/bin/python benchmarks/dashboard_speed.py -n 100000 --runs 100 --clients 50 --keep
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import re
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from alembic import command
from sqlalchemy import select

from dashboard.app import make_app
from tickets.catalogue import Role
from tickets.db import alembic_config, create_engine, session_factory
from tickets.models import Responder, Ticket
from tickets.service import NewTicket, TicketService

# isort: split
# benchmarks/: the script's own folder is first on sys.path
from common import DEFAULT_PG, pct, pg_admin, pg_dsn, pg_url
from queue_query import OPEN, fill, load

PASSWORD = "bench-dashboard-password"
SECRET = bytes(range(32))
TARGETS_MS = {"queue": 30.0, "queue+filter": 30.0, "queue p2": 30.0, "ticket": 30.0, "figures": 300.0}
# The queue's filters as staff combine them (round-robin): a category, the overdue ones, a status within a
# category, those created since a date.
FILTERED = ("category=eldercare", "overdue=1", "status=accepted&category=property", "from=2026-11-01")
NUMBER = re.compile(r"MH-\d{8}-\d+")
LIVE_PATH = "/live"
BURST_TEXT = "楼道灯坏了,晚上看不见路(压测 {i})"


# ---------------------------------------------------------------------------------------------- setup


async def build(args: argparse.Namespace, name: str) -> None:
    dsn, url = pg_dsn(args.pg, name), pg_url(args.pg, name)
    await pg_admin(args.pg, f'CREATE DATABASE "{name}"')
    started = time.perf_counter()
    await asyncio.to_thread(command.upgrade, alembic_config(url), "head")
    await load(url, args.communities, args.grids)
    conn = await asyncpg.connect(dsn)
    try:
        timings = await fill(
            conn, args.tickets, args.residents_per_grid, args.open_share, args.years, datetime.now(UTC)
        )
        opened = await conn.fetchval(
            "SELECT count(*) FROM tickets WHERE status = ANY($1::text[])", list(OPEN)
        )
    finally:
        await conn.close()
    print(
        f"database {name}: {args.tickets:,} tickets ({opened:,} open) in {time.perf_counter() - started:.0f}s ("
        + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items())
        + ")",
        flush=True,
    )


async def staff_of(service: TicketService) -> list[tuple[str, int, int | None]]:
    """(code, responder id, community id) of every community staff member and the street staff."""
    async with service.sessions() as session:
        rows = await session.execute(
            select(Responder.code, Responder.id, Responder.community_id)
            .where(Responder.role.in_([Role.COMMUNITY_STAFF, Role.STREET_STAFF]))
            .order_by(Responder.id)
        )
        return [(code, rid, community) for code, rid, community in rows]


async def open_numbers(service: TicketService, community_id: int, limit: int = 500) -> list[str]:
    async with service.sessions() as session:
        rows = await session.scalars(
            select(Ticket.number)
            .where(Ticket.community_id == community_id, Ticket.status.in_(OPEN))
            .order_by(Ticket.id.desc())
            .limit(limit)
        )
        return list(rows)


# ---------------------------------------------------------------------------------------------- timing


class ServerTimes:
    """The outermost middleware: how long the app took for each request (handler, templates, queries)."""

    def __init__(self) -> None:
        self.last = math.nan

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            return await handler(request)
        finally:
            self.last = time.perf_counter() - started


Client = TestClient[web.Request, web.Application]


async def sign_in(client: Client, username: str) -> None:
    """Through the login form: its CSRF token, then the POST."""
    page = await (await client.get("/login")).text()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    if token is None:
        raise RuntimeError("no CSRF token on /login")
    response = await client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "csrf_token": token.group(1), "next": "/"},
        allow_redirects=False,
    )
    if response.status not in (302, 303):
        raise RuntimeError(f"login of {username} answered {response.status}: {(await response.text())[:300]}")


async def time_gets(
    client: Client, timer: ServerTimes, paths: list[str], runs: int
) -> tuple[list[float], list[float]]:
    """`runs` GETs round-robin over `paths`: (server seconds, client seconds) of each; any non-200 stops."""
    server, seen = [], []
    for path in paths[:5]:  # warm-up: pool, statement cache, templates
        await (await client.get(path)).read()
    for i in range(runs):
        path = paths[i % len(paths)]
        started = time.perf_counter()
        response = await client.get(path)
        await response.read()
        seen.append(time.perf_counter() - started)
        if response.status != 200:
            raise RuntimeError(f"GET {path} answered {response.status}")
        server.append(timer.last)
    return server, seen


# ---------------------------------------------------------------------------------------------- live


class Stream:
    """One open dashboard: every ticket number the stream's data named, and when it had all it expects."""

    def __init__(self, expected: set[str]) -> None:
        self.expected = expected  # filled once the burst is made
        self.got: set[str] = set()
        self.ready = asyncio.Event()
        self.complete = asyncio.Event()

    async def listen(self, http: aiohttp.ClientSession, url: str) -> None:
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as response:
            if response.status != 200:
                raise RuntimeError(f"{url} answered {response.status}")
            async for line in response.content:
                text = line.decode("utf-8", "replace")
                if text.startswith("event: ready") or text.startswith("event:ready"):
                    self.ready.set()  # the server has this stream's listener: nothing from now on is missed
                elif text.startswith("data:"):
                    self.got.update(NUMBER.findall(text))
                    if self.expected and self.expected <= self.got:
                        self.complete.set()


async def live(
    client: Client, service: TicketService, community_code: str, clients: int, burst: int, wait: float
) -> dict[str, Any]:
    """`clients` open streams with the signed-in client's cookie; `burst` new tickets in the community;
    how many of the burst's numbers each stream missed."""
    url = str(client.make_url(LIVE_PATH))
    cookies = {c.key: c.value for c in client.session.cookie_jar}
    expected: set[str] = set()
    streams = [Stream(expected) for _ in range(clients)]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), cookies=cookies) as http:
        tasks = [asyncio.create_task(s.listen(http, url)) for s in streams]
        started = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(s.ready.wait() for s in streams)), 60)
        connected = time.perf_counter() - started

        resident = await service.resident_for(f"bench:live-{uuid.uuid4().hex[:8]}")
        await service.remember_resident(resident.id, community=community_code)
        numbers = []
        started = time.perf_counter()
        for i in range(burst):
            ticket = await service.create_ticket(
                NewTicket(resident.id, "facility_repair", BURST_TEXT.format(i=i))
            )
            numbers.append(ticket.number)
        made = time.perf_counter() - started
        expected.update(numbers)
        for stream in streams:  # a stream may have had them all before `expected` was filled
            if expected <= stream.got:
                stream.complete.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(s.complete.wait() for s in streams)), wait)
        delivered = time.perf_counter() - started
        for task in tasks:
            task.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    errors = [o for o in outcomes if isinstance(o, Exception)]
    lost = [len(expected - s.got) for s in streams]
    return {
        "clients": clients,
        "connected_s": connected,
        "burst": burst,
        "burst_s": made,
        "all_delivered_s": delivered,
        "lost_total": sum(lost),
        "clients_missing_any": sum(1 for n in lost if n),
        "errors": len(errors),
    }


# ---------------------------------------------------------------------------------------------- main


async def run(args: argparse.Namespace, name: str) -> None:
    engine = create_engine(pg_url(args.pg, name))
    service = TicketService(session_factory(engine))
    try:
        staff = await staff_of(service)
        suffix = uuid.uuid4().hex[:6]
        usernames = {}
        for code, rid, _community in staff:
            usernames[code] = f"{code}-{suffix}"
            await service.add_account(usernames[code], rid, PASSWORD, is_admin=False)
        timer = ServerTimes()
        app = make_app(service, secret=SECRET, live_every=args.live_every)
        app.middlewares.insert(0, timer.middleware)
        rows: list[tuple[str, str, list[float], list[float]]] = []
        month = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")  # the month as staff read it
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            for code, _rid, community in staff:
                await sign_in(client, usernames[code])
                who = "street staff" if community is None else code.removesuffix("-staff")
                if "queue" in args.pages:
                    rows.append(("queue", who, *await time_gets(client, timer, ["/"], args.runs)))
                if "filters" in args.pages:
                    paths = [f"/?{query}" for query in FILTERED]
                    rows.append(("queue+filter", who, *await time_gets(client, timer, paths, args.runs)))
                    first = await (await client.get("/")).text()
                    cursor = re.search(r'href="(/\?[^"]*cursor=[^"]+)"', first)
                    if cursor:  # the second page, by the first page's own link
                        second = [cursor.group(1).replace("&amp;", "&")]
                        rows.append(("queue p2", who, *await time_gets(client, timer, second, args.runs)))
                if community is not None and "ticket" in args.pages:
                    numbers = await open_numbers(service, community)
                    random.Random(7).shuffle(numbers)
                    paths = [f"/tickets/{n}" for n in numbers]
                    rows.append(("ticket", who, *await time_gets(client, timer, paths, args.runs)))
                figure_runs = max(20, args.runs // 5)
                if "figures" in args.pages:
                    rows.append(
                        (
                            "figures",
                            who,
                            *await time_gets(client, timer, [f"/figures?month={month}"], figure_runs),
                        )
                    )
            print_pages(rows)

            if args.clients == 0:
                return
            first_code, _first_id, first_community = next(s for s in staff if s[2] is not None)
            await sign_in(client, usernames[first_code])
            async with service.sessions() as session:
                from tickets.models import Community

                community_code = (await session.get_one(Community, first_community)).code
            result = await live(client, service, community_code, args.clients, args.burst, args.wait)
            print(
                f"\nlive: {result['clients']} open streams (all connected in {result['connected_s']:.1f}s), "
                f"{result['burst']} new tickets in {result['burst_s']:.1f}s, every stream had all of them "
                f"{result['all_delivered_s']:.1f}s after the burst began; lost events {result['lost_total']} "
                f"({result['clients_missing_any']} streams missed any), stream errors {result['errors']}"
            )
    finally:
        await engine.dispose()


def print_pages(rows: list[tuple[str, str, list[float], list[float]]]) -> None:
    print(
        f"\ndashboard pages ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f})"
    )
    header = f"{'page':<12} {'who':<14} {'runs':>5} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'max ms':>7} {'client p95':>10}  target p95"
    print(header)
    print("-" * len(header))
    for page, who, server, seen in rows:
        ms = [s * 1000 for s in server]
        p95 = pct(ms, 0.95)
        verdict = "ok" if p95 <= TARGETS_MS[page] else "OVER"
        print(
            f"{page:<12} {who:<14} {len(ms):>5} {pct(ms, 0.5):>7.2f} {p95:>7.2f} {pct(ms, 0.99):>7.2f} "
            f"{max(ms):>7.2f} {pct(seen, 0.95) * 1000:>10.2f}  ≤ {TARGETS_MS[page]:.0f} ms {verdict}"
        )
    print("server: the app's time for the request (outermost middleware); client: as aiohttp's client saw it")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "-n", "--tickets", type=int, default=1_000_000, help="tickets to generate (1,000,000)"
    )
    parser.add_argument(
        "--runs", type=int, default=300, help="timed requests per page and staff member (300)"
    )
    parser.add_argument(
        "--pages", default="queue,filters,ticket,figures", help="pages to time (queue,filters,ticket,figures)"
    )
    parser.add_argument("--clients", type=int, default=200, help="open live-update streams (200; 0: none)")
    parser.add_argument("--burst", type=int, default=50, help="ticket changes in the burst (50)")
    parser.add_argument(
        "--wait", type=float, default=30.0, help="seconds to wait for the burst's events (30)"
    )
    parser.add_argument("--live-every", type=float, default=1.0, help="the app's live-update interval (1 s)")
    parser.add_argument("--communities", type=int, default=3)
    parser.add_argument("--grids", type=int, default=10, help="grids per community (10)")
    parser.add_argument("--residents-per-grid", type=int, default=1000)
    parser.add_argument("--open-share", type=float, default=0.03, help="share of open tickets (0.03)")
    parser.add_argument("--years", type=float, default=2.0, help="history the tickets span (2)")
    parser.add_argument("--pg", default=DEFAULT_PG, help=f"PostgreSQL server (default {DEFAULT_PG})")
    parser.add_argument("--keep", action="store_true", help="keep the database (its name is printed)")
    parser.add_argument("--database", help="reuse a database kept by --keep (no fill)")
    args = parser.parse_args()
    if args.runs < 1 or args.tickets < 1000 or args.clients < 0 or args.burst < 1:
        parser.error("need --runs ≥ 1, --tickets ≥ 1000, --clients ≥ 0 and --burst ≥ 1")

    name = args.database or f"minhu_bench_dash_{uuid.uuid4().hex[:8]}"
    keep = args.keep or bool(args.database)
    print(f"database {name} ({'kept' if keep else 'dropped at the end'})", flush=True)
    try:
        if args.database:  # a kept database: bring its schema up to date (a no-op when it is)
            command.upgrade(alembic_config(pg_url(args.pg, name)), "head")
        else:
            asyncio.run(build(args, name))
        asyncio.run(run(args, name))
    finally:
        if not keep:
            with contextlib.suppress(Exception):
                asyncio.run(pg_admin(args.pg, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    return 0


if __name__ == "__main__":
    sys.exit(main())
