"""The dashboard's figures page (/figures for a month) on PostgreSQL with queue_query.py's million tickets:
server time of the whole request — sign-in check, everything the handler computes, the template — for a
street staff member and a community staff member, the roll-up path (tickets.rollup, the default) and the
plain path (counting the tickets themselves, ``Insights.rollup_reads = False``) INTERLEAVED request by
request, so that whatever else loads the shared machine loads both alike.

The database must be at the head migration (0008 builds and backfills the roll-up): fill one with

    .venv/bin/python benchmarks/queue_query.py --keep --runs 5 --no-try-index     # prints its name
    .venv/bin/alembic -x url=… upgrade head      # or any migration run, if it was filled before 0008

then

    .venv/bin/python benchmarks/figures_speed.py --db minhu_bench_queue_5c488875 --runs 40

Before timing, it checks that both paths give the same page data (every figure of the view).
The time is the request's round trip on loopback through aiohttp's test server (the app's real middleware
and handler), i.e. the server time plus well under a millisecond of loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
from datetime import UTC, datetime

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from dashboard.app import HANDLER_ARGS, make_app
from tickets import crypto
from tickets.catalogue import Role
from tickets.db import create_engine, session_factory, unit_of_work
from tickets.metrics import Period
from tickets.models import Responder
from tickets.service import TicketService

# isort: split
from common import DEFAULT_PG, pct, pg_url

crypto.configure(crypto.Keyring(crypto.DataKey(bytes(32))))  # queue_query.py's throwaway key
PASSWORD = "bench password 1"
TOKEN_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
Client = TestClient[web.Request, web.Application]


async def sign_in(service: TicketService, server: TestServer, responder_id: int, name: str) -> Client:
    if not any(a.username == name for a in await service.staff_accounts()):
        await service.add_account(name, responder_id, PASSWORD)
    client: Client = TestClient(server)
    await client.start_server()
    page = await (await client.get("/login")).text()
    match = TOKEN_RE.search(page)
    assert match, "no CSRF field on /login"
    response = await client.post(
        "/login",
        data={"username": name, "password": PASSWORD, "csrf_token": match.group(1), "next": "/"},
        allow_redirects=False,
    )
    assert response.status == 302, await response.text()
    return client


async def run(url: str, month: str, runs: int) -> None:
    engine = create_engine(url)
    service = TicketService(session_factory(engine))
    server = TestServer(make_app(service, secret=bytes(range(32))))
    await server.start_server(**HANDLER_ARGS)
    try:
        async with unit_of_work(service.sessions) as session:
            staff = (
                await session.execute(
                    select(Responder.id, Responder.code, Responder.role)
                    .where(Responder.role.in_([Role.COMMUNITY_STAFF, Role.STREET_STAFF]))
                    .order_by(Responder.id)
                )
            ).all()
        street = next(rid for rid, _, role in staff if role == Role.STREET_STAFF)
        community = next(rid for rid, _, role in staff if role == Role.COMMUNITY_STAFF)
        who = {
            "street staff": await sign_in(service, server, street, "bench-street"),
            "community staff": await sign_in(service, server, community, "bench-community"),
        }
        # The same figures both ways (the view the page renders), before any timing.
        period = Period.parse_month(month)
        for rid in (street, community):
            views = [await service.figures_view(rid, period, fast=fast) for fast in (True, False)]
            assert views[0] == views[1], "the roll-up path and the plain path disagree"
        path = f"/figures?span=month&month={month}"
        for client in who.values():  # warm-up: pool, compiled statements, templates
            for fast in (True, False, True, False):
                service.rollup_reads = fast
                assert (await client.get(path)).status == 200
        print(
            f"timing {runs} requests a variant, {path} (load average {os.getloadavg()[0]:.2f}) ...",
            flush=True,
        )
        times: dict[tuple[str, str], list[float]] = {}
        ids = {"street staff": street, "community staff": community}
        for _ in range(runs):
            for label, client in who.items():
                for variant, fast in (("roll-up", True), ("plain", False)):
                    service.rollup_reads = fast
                    started = time.perf_counter()
                    response = await client.get(path)
                    await response.read()
                    times.setdefault((label, variant), []).append(time.perf_counter() - started)
                    assert response.status == 200
                # The domain call alone (figures_view, what the handler awaits), to show where the time goes.
                started = time.perf_counter()
                await service.figures_view(ids[label], period, fast=True)
                times.setdefault((label, "roll-up, figures_view only"), []).append(
                    time.perf_counter() - started
                )
        print(
            f"\nfigures page for {month}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs,"
            f" load average {os.getloadavg()[0]:.2f}"
        )
        print(f"{'who':<16} {'path':<27} {'runs':>5} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
        for (label, variant), values in times.items():
            print(
                f"{label:<16} {variant:<27} {len(values):>5} {pct(values, 0.5) * 1000:>8.1f}"
                f" {pct(values, 0.95) * 1000:>8.1f} {max(values) * 1000:>8.1f}"
            )
    finally:
        for client in locals().get("who", {}).values():
            await client.close()
        await server.close()
        await engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--db", required=True, help="the database queue_query.py filled (--keep), migrated to head"
    )
    parser.add_argument("--pg", default=DEFAULT_PG, help=f"PostgreSQL server (default {DEFAULT_PG})")
    parser.add_argument("--month", default=None, help="YYYY-MM (default: the last whole month)")
    parser.add_argument("--runs", type=int, default=40, help="requests per staff member and path (40)")
    args = parser.parse_args()
    now = datetime.now(UTC)
    month = args.month or (f"{now.year - 1}-12" if now.month == 1 else f"{now.year}-{now.month - 1:02d}")
    asyncio.run(run(pg_url(args.pg, args.db), month, args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
