#!/usr/bin/env python3
"""The web channel's speed (issue 15): web chat message -> reply at 50 concurrent residents with think time,
against Rasa's REST channel in the same run; and an offer reaching 500 open volunteer pages.

Everything is real and on loopback: a scratch database (SQLite in a temp folder, or with --db postgres a
``minhu_bench_webchat_*`` database, dropped at the end) with the test org, the real Rasa server and action
server (minhu.stack.local_stack, the model scripts/rasa-train.sh names), and the web application in a process
of its own, composed as `minhu web` composes it (open_service + dashboard_server: the dashboard, /chat and /v,
with the health middleware), this script re-run with --serve. The clients are in this process.

chat — residents are browsers: each has its own cookie jar, opens /chat, consents (the form and its CSRF token),
    then, like static/chat.js, POSTs each message to /chat/messages (the replies come in that POST's answer:
    that is what is timed) and keeps /chat/live open in the background (a code without it: asks
    /chat/updates every 3 s, as its page did). Each resident has an address of
    its own (X-Forwarded-For from a trusted proxy, as behind docker/nginx.conf), so the per-address limits are
    the production ones. A conversation files a request (benchmarks/chat_latency.py's texts and form answers).
    In the same run, the same conversations go straight to Rasa's REST channel as the relay sends them
    (`web:` sender, the relay secret's header): phases alternate web, rest, rest, web, ... at the same
    concurrency. The relay's overhead is the difference; the web process also times, per message, its
    handler and the Rasa call inside it (so the server's own share is measured, not inferred).
    Targets: web p95 <= 100 ms; web p95 - REST p95 <= 10 ms.
    --together: each phase has --residents on the web and as many on REST at the same time instead, so both
    paths meet the same Rasa queue at the same moments (phases apart, the REST phases of one run differ by
    more than the 10 ms asked of the relay: benchmarks/README.md).
    --old REF: an older commit's web process too (`git archive`, same database, same Rasa), its phases
    ("web-old") interleaved with the new one's, so old and new are compared in the same minutes.

offers — N volunteers (party volunteers of grid anju-1, loaded with tickets.org.load_org beside the test org),
    each with an invite code (ChannelStore.create_invite, what `minhu responders invite` does) redeemed on /v
    by its own browser; each keeps /v/live open and, like static/volunteer.js, fetches /v/panel on a ticket
    event. Then an eldercare request (抢单) is dispatched through TicketService.create_ticket with the
    category's offer_to raised so that it is offered to every one of them: every page in the community gets
    the event and refetches its panel whoever is offered (dashboard/live.py scopes events by community), so
    the server's work is that of any 抢单 ticket in a community with N open pages; offered to all, each page
    can also check the offer is shown. Timed from the create's commit (create_ticket returning) to the event,
    and to the panel showing the offer. Target: every page within 1 s.

    .venv/bin/python benchmarks/webchat_speed.py                          # SQLite: 50 residents, 500 pages
    .venv/bin/python benchmarks/webchat_speed.py --db postgres
    .venv/bin/python benchmarks/webchat_speed.py --parts offers --pages 200 --offers 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import dataclasses
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

# isort: split
# benchmarks/: the script's own folder is first on sys.path
from chat_latency import REQUESTS, converse, rest_say, stack_processes
from common import DEFAULT_PG, REPO, cpu_seconds, pct, pg_admin, pg_url, process_cpu

FORM_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
PAGE_CSRF = re.compile(r'data-csrf="([^"]+)"')
POLL_S = 3.0  # static/chat.js's POLL_MS
STATS_PATH = "/bench-stats"
# The live poll's interval in the web process, when --live-every is given (else make_app's default).
LIVE_EVERY_ENV = "MINHU_BENCH_LIVE_EVERY"
PROFILE_ENV = "MINHU_BENCH_PROFILE"  # the web process runs under cProfile and writes its stats there
WARMUP_OFFSET = 40_000  # the warm-up residents' addresses (address()), apart from the timed phases'
OFFER_TEXT = "家里老人独居,腿脚不便,想预约上门助餐(压测 {i})"


def address(i: int) -> str:
    """A resident's or volunteer's own address, as the entry names it in X-Forwarded-For."""
    return f"10.15.{i // 250}.{i % 250 + 1}"


def summary(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {"n": len(ms), "p50": pct(ms, 0.5), "p95": pct(ms, 0.95), "max": max(ms, default=float("nan"))}


def load_line() -> str:
    return f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)"


# ---------------------------------------------------------------------------------------------- the web process


def serve() -> None:
    """The web application as `minhu web` runs it (settings from the environment), plus, for the benchmark,
    the time of each /chat/messages handler and of the Rasa call inside it, read (and reset) at STATS_PATH."""
    from aiohttp import web

    import minhu.dashboard_server as composition
    from app.relay import RasaClient
    from app.settings import get_settings
    from app.wiring import open_service
    from dashboard.app import make_app as real_make_app

    handler_s: list[float] = []
    rasa_s: list[float] = []
    # The Rasa calls made for the request being handled (the relay's task inherits the handler's context), so
    # each handler's own share is its time minus its own Rasa call, not another message's.
    in_request: contextvars.ContextVar[list[float] | None] = contextvars.ContextVar("rasa", default=None)
    rasa_in_handler_s: list[float] = []
    real_send = RasaClient.send

    async def timed_send(
        self: RasaClient, sender: str, message: str, message_id: str | None = None
    ) -> list[dict[str, Any]]:
        started = time.perf_counter()
        try:
            return await real_send(self, sender, message, message_id)
        finally:
            rasa_s.append(time.perf_counter() - started)
            calls = in_request.get()
            if calls is not None:
                calls.append(rasa_s[-1])

    @web.middleware
    async def timing(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        started, calls = time.perf_counter(), []
        in_request.set(calls)
        try:
            return await handler(request)
        finally:
            if request.path == "/chat/messages":
                handler_s.append(time.perf_counter() - started)
                rasa_in_handler_s.append(sum(calls))

    async def stats(request: web.Request) -> web.Response:
        body = {
            "handler_s": list(handler_s),
            "rasa_s": list(rasa_s),
            "rasa_in_handler_s": list(rasa_in_handler_s),
        }
        for kept in (handler_s, rasa_s, rasa_in_handler_s):
            kept.clear()
        return web.json_response(body)

    def make_app(*args: Any, **kwargs: Any) -> web.Application:
        if os.environ.get(LIVE_EVERY_ENV):
            kwargs.setdefault("live_every", float(os.environ[LIVE_EVERY_ENV]))
        app = real_make_app(*args, **kwargs)
        app.middlewares.insert(0, timing)
        app.router.add_get(STATS_PATH, stats)
        return app

    RasaClient.send = timed_send  # type: ignore[method-assign]
    vars(composition)["make_app"] = make_app  # what dashboard_server calls

    async def run() -> None:
        settings = get_settings()
        async with (
            open_service(settings) as service,
            composition.dashboard_server(settings, service) as dashboard,
        ):
            print(f"serving {dashboard.url}", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent goes

    profile = os.environ.get(PROFILE_ENV)
    if not profile:
        asyncio.run(run())
        return
    import cProfile

    with cProfile.Profile() as profiler:
        asyncio.run(run())
    profiler.dump_stats(profile)


def print_profile(path: Path, lines: int = 35) -> None:
    """The web process's CPU profile: the project's functions by cumulative time, then every function by
    its own time."""
    import pstats

    stats = pstats.Stats(str(path))
    stats.sort_stats("cumulative").print_stats(rf"{REPO}/(app|dashboard|tickets)/", lines)
    stats.sort_stats("tottime").print_stats(lines)


@contextlib.contextmanager
def web_process(
    data_dir: Path,
    db_url: str,
    rasa_url: str,
    live_every: float | None,
    profile: Path | None,
    code: Path = REPO,
) -> Any:
    """This script with --serve in a process of its own, on the application code of `code` (a checkout: --old),
    so that both processes are timed by the same harness; yields (its URL, its pid)."""
    from tests.e2e.conftest import free_port

    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(code),
        "MINHU_DATA_DIR": str(data_dir),
        "DATABASE_URL": db_url,
        "MINHU_DASHBOARD_HOST": "127.0.0.1",
        "MINHU_DASHBOARD_PORT": str(port),
        "MINHU_RASA_URL": rasa_url,
        "MINHU_TRUSTED_PROXIES": "127.0.0.1/32",
        LIVE_EVERY_ENV: str(live_every or ""),
        **({PROFILE_ENV: str(profile)} if profile else {}),
    }
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("serving "):
            raise RuntimeError(f"the web process did not start: {line!r}")
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        with contextlib.suppress(Exception):
            assert process.stdin is not None
            process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ---------------------------------------------------------------------------------------------- chat


async def browser(url: str, i: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        url,
        cookie_jar=aiohttp.CookieJar(unsafe=True),  # cookies of an IP address (127.0.0.1)
        headers={"X-Forwarded-For": address(i)},
        timeout=aiohttp.ClientTimeout(total=60),
    )


async def consented(http: aiohttp.ClientSession) -> str:
    """/chat, the consent form, 同意: the chat page's CSRF token."""
    form = FORM_CSRF.search(await (await http.get("/chat")).text())
    if form is None:
        raise RuntimeError("no consent form on /chat")
    page = await (await http.post("/chat/consent", data={"csrf_token": form.group(1)})).text()
    token = PAGE_CSRF.search(page)
    if token is None:
        raise RuntimeError(f"no chat page after consent: {page[:300]!r}")
    return token.group(1)


async def web_resident(
    url: str, i: int, first: str, think: float, samples: list[tuple[str, float]], errors: list[str]
) -> bool:
    async with await browser(url, i) as http:
        token = await consented(http)

        async def say(message: str) -> str:
            async with http.post(
                "/chat/messages", json={"text": message}, headers={"X-CSRF-Token": token}
            ) as response:
                try:
                    body = await response.json()
                except (aiohttp.ContentTypeError, ValueError):  # the error page of a 500
                    body = {"error": (await response.text())[:120]}
                if response.status != 200 or body.get("stored"):
                    errors.append(f"{response.status} {str(body)[:120]}")
            return "\n".join(str(b.get("text") or "") for b in body.get("bubbles") or [])

        async def poll() -> None:  # the page's /chat/updates every POLL_S while it is open
            while True:
                await asyncio.sleep(POLL_S)
                async with http.get("/chat/updates") as response:
                    if response.status != 200:
                        errors.append(f"updates {response.status}")
                    await response.read()

        async def listen() -> None:  # the page's live stream; a code without one: its poll
            timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
            async with http.get("/chat/live", timeout=timeout) as response:
                if response.status == 404:
                    await poll()
                if response.status != 200:
                    errors.append(f"live {response.status}")
                    return
                async for _ in response.content:  # what comes is shown; nothing else to do
                    pass

        poller = asyncio.create_task(listen())
        try:
            return await converse(say, f"web-{i}", first, samples, think)
        finally:
            poller.cancel()
            await asyncio.gather(poller, return_exceptions=True)


async def rest_resident(
    http: aiohttp.ClientSession,
    rasa_url: str,
    i: int,
    first: str,
    think: float,
    samples: list[tuple[str, float]],
) -> bool:
    from app.relay import relay_headers

    sender = f"web:{secrets.token_urlsafe(16)}"  # as dashboard.chat_relay.new_sender
    return await converse(
        rest_say(http, rasa_url, sender, relay_headers(sender)), f"web-{i}", first, samples, think
    )


async def chat_phase(
    path: str,
    web_url: str,
    rasa_url: str,
    residents: int,
    think: float,
    offset: int,
    pids: dict[str, list[int]],
) -> dict[str, Any]:
    """One path's residents, each a whole conversation; the processes' CPU over the phase per message (for
    phases run side by side, `together` divides it between them afterwards)."""
    samples: list[tuple[str, float]] = []
    errors: list[str] = []
    cpu_before = {name: cpu_seconds(p) for name, p in pids.items()}
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        if path == "web":
            runs = [
                web_resident(web_url, offset + i, REQUESTS[i % len(REQUESTS)], think, samples, errors)
                for i in range(residents)
            ]
        else:
            runs = [
                rest_resident(http, rasa_url, offset + i, REQUESTS[i % len(REQUESTS)], think, samples)
                for i in range(residents)
            ]
        tickets = sum(await asyncio.gather(*runs))
    elapsed = time.perf_counter() - started
    cpu = {name: cpu_seconds(p) - cpu_before[name] for name, p in pids.items()}
    seconds = [s for _, s in samples]
    return {
        "path": path,
        "residents": residents,
        "tickets": tickets,
        "errors": errors,
        "seconds": seconds,
        "elapsed": elapsed,
        "cpu_ms_per_msg": {k: v * 1000 / max(1, len(seconds)) for k, v in cpu.items()},
        "cpu_s": cpu,
    }


async def together(
    web_url: str, rasa_url: str, args: argparse.Namespace, offset: int, pids: dict[str, list[int]]
) -> list[dict[str, Any]]:
    """A web phase and a REST phase at the same time (`--together`): the same number of residents on each
    path, side by side, so both meet the same Rasa queue at the same moments and the difference of their
    figures is the relay's. CPU per message: the web process's over the web messages, Rasa's and the action
    server's over both paths' messages."""
    web, rest = await asyncio.gather(
        chat_phase("web", web_url, rasa_url, args.residents, args.think, offset, pids),
        chat_phase("rest", web_url, rasa_url, args.residents, args.think, offset + 500, pids),
    )
    messages = len(web["seconds"]) + len(rest["seconds"])
    for phase in (web, rest):
        shared = {k: v * 1000 / max(1, messages) for k, v in phase["cpu_s"].items() if k != "web"}
        web_ms = phase["cpu_s"].get("web", 0.0) * 1000 / max(1, len(web["seconds"]))
        phase["cpu_ms_per_msg"] = {**shared, "web": web_ms if phase is web else 0.0}
    return [web, rest]


async def chat(
    webs: dict[str, tuple[str, int]], rasa_url: str, args: argparse.Namespace, pids: dict[str, list[int]]
) -> dict[str, Any]:
    """`webs`: the web processes by path ("web", and "web-old" with --old): (URL, pid)."""

    def phase_pids(path: str) -> dict[str, list[int]]:  # "web": the process of the phase's path
        return {**pids, "web": [webs.get(path, webs["web"])[1]]}

    # Warm-up, not timed: every path (each web process, then REST) at the run's concurrency and think time, a
    # whole conversation per resident, so Rasa (its predictions at every step of the form, its tracker store),
    # the action server and each web process (its pools, templates, the database's pages) are warm before the
    # first timed phase, whichever path that is. (2 residents without think time were not enough, nor one
    # conversation each at think 2 s: the first timed phase was still the slowest of its run; README.)
    for n, path in enumerate([*webs, "rest"] * args.warmup_rounds):
        url = webs.get(path, webs["web"])[0]
        kind = "rest" if path == "rest" else "web"
        think = args.think if args.warmup_think is None else args.warmup_think
        warm = await chat_phase(
            kind, url, rasa_url, args.residents, think, WARMUP_OFFSET + n * 1000, phase_pids(path)
        )
        print_phase(f"warm-up {path:<7}", warm, "(not counted)")
    async with aiohttp.ClientSession() as http:
        for url, _ in webs.values():
            await (await http.get(f"{url}{STATS_PATH}")).read()  # reset
    phases: list[dict[str, Any]] = []
    if args.together:
        for n in range(args.rounds):
            pair = await together(webs["web"][0], rasa_url, args, n * 1000, phase_pids("web"))
            for phase in pair:
                print_phase(f"{phase['path']:<7}", phase, "(side by side)")
            phases.extend(pair)
        return {"phases": phases, **await server_stats(webs)}
    paths = [*(reversed(webs) if args.old_first else webs), "rest"]
    order = [paths if r % 2 == 0 else paths[::-1] for r in range(args.rounds)]
    for n, path in enumerate(p for pair in order for p in pair):
        url = webs.get(path, webs["web"])[0]
        kind = "rest" if path == "rest" else "web"
        phase = await chat_phase(kind, url, rasa_url, args.residents, args.think, n * 1000, phase_pids(path))
        phase["path"] = path
        print_phase(f"{path:<7}", phase)
        phases.append(phase)
    return {"phases": phases, **await server_stats(webs)}


def print_phase(name: str, phase: dict[str, Any], note: str = "") -> None:
    """One line as a phase ends: its messages and tickets, its p95, the load."""
    print(
        f"  {time.strftime('%H:%M:%S')} {name} {len(phase['seconds'])} messages, {phase['tickets']} tickets, "
        f"p95 {summary(phase['seconds'])['p95']:.1f} ms{' ' + note if note else ''}, {load_line()}",
        flush=True,
    )


async def server_stats(webs: dict[str, tuple[str, int]]) -> dict[str, Any]:
    """What each web process timed (its handlers and their Rasa calls)."""
    servers = {}
    async with aiohttp.ClientSession() as http:
        for path, (url, _) in webs.items():
            servers[path] = await (await http.get(f"{url}{STATS_PATH}")).json()
    return {"server": servers["web"], "servers": servers}


def own_share(server: dict[str, list[float]]) -> tuple[list[float], list[float], list[float]]:
    """A web process's handler times, its Rasa calls, and each handler's time without its own Rasa call (an
    older code's process pairs them by order only)."""
    handler, rasa = server["handler_s"], server["rasa_s"]
    paired = server.get("rasa_in_handler_s") or rasa
    return handler, rasa, [h - r for h, r in zip(handler, paired, strict=False)]


def print_chat(result: dict[str, Any], args: argparse.Namespace) -> bool:
    phases = result["phases"]
    by_path: dict[str, list[float]] = {}
    for phase in phases:
        by_path.setdefault(phase["path"], []).extend(phase["seconds"])
    side = (
        f", each phase {args.residents} on the web and {args.residents} on REST at once"
        if args.together
        else ""
    )
    print(
        f"\nweb chat, {args.residents} concurrent residents{side}, think {args.think} s, {args.rounds} rounds "
        f"({load_line()})"
    )
    header = f"{'path':<32} {'messages':>8} {'tickets':>7} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7}  CPU ms/msg (web / rasa / actions)"
    print(header)
    print("-" * len(header))
    names = {
        "web": "web chat (POST /chat/messages)",
        "web-old": f"web chat, old code ({args.old})",
        "rest": "Rasa REST channel",
    }
    for path, seconds in sorted(by_path.items(), key=lambda item: list(names).index(item[0])):
        s = summary(seconds)
        mine = [p for p in phases if p["path"] == path]
        cpu = {k: sum(p["cpu_ms_per_msg"][k] for p in mine) / len(mine) for k in mine[0]["cpu_ms_per_msg"]}
        print(
            f"{names[path]:<32} {s['n']:>8} {sum(p['tickets'] for p in mine):>7} {s['p50']:>7.1f} {s['p95']:>7.1f} "
            f"{s['max']:>7.1f}  {cpu.get('web', 0):.1f} / {cpu.get('rasa', 0):.1f} / {cpu.get('actions', 0):.1f}"
        )
    for path, server in result.get("servers", {"web": result["server"]}).items():
        handler, rasa, inside = own_share(server)
        print(
            f"in the {path} process: handler p50/p95 {pct(handler, 0.5) * 1000:.1f}/{pct(handler, 0.95) * 1000:.1f} "
            f"ms, its Rasa call {pct(rasa, 0.5) * 1000:.1f}/{pct(rasa, 0.95) * 1000:.1f} ms, the rest (cookies, "
            f"consent and storing, marking it answered, JSON) {pct(inside, 0.5) * 1000:.1f}/{pct(inside, 0.95) * 1000:.1f} ms"
        )
    inside = own_share(result["server"])[2]
    errors = [e for p in phases for e in p["errors"]]
    if errors:
        print(f"web errors or stored answers: {len(errors)}, e.g. {errors[:3]}")
    web, rest = summary(by_path["web"]), summary(by_path["rest"])
    overhead = web["p95"] - rest["p95"]
    own = pct(inside, 0.95) * 1000
    met = web["p95"] <= 100 and overhead <= 10 and own <= 10 and not errors
    print(
        f"relay overhead: web - REST p50 {web['p50'] - rest['p50']:+.1f} ms, p95 {overhead:+.1f} ms "
        f"({'side by side: the same Rasa queue' if args.together else 'phases apart: Rasa own queueing differs between them'}); "
        f"the web process's own share p95 {own:.1f} ms. "
        f"target web p95 <= 100 ms: {'met' if web['p95'] <= 100 else 'NOT met'} ({web['p95']:.1f} ms); "
        f"overhead <= 10 ms: {'met' if max(overhead, own) <= 10 else 'NOT met'}"
    )
    return met


# ---------------------------------------------------------------------------------------------- offers


class Page:
    """One open volunteer page (static/volunteer.js): its stream, and when it saw the offer: the event, and
    the offer shown (its card in an `offer` event, or the panel fetched on a `ticket` event showing it)."""

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.http = http
        self.ready = asyncio.Event()
        self.target = ""  # the ticket number waited for
        self.event_at: dict[str, float] = {}
        self.shown_at: dict[str, float] = {}
        self.busy = False
        self.again = False
        self.shown_all = asyncio.Event()
        self.fetches: set[asyncio.Task[None]] = set()

    async def listen(self) -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with self.http.get("/v/live", timeout=timeout) as response:
            if response.status != 200:
                raise RuntimeError(f"/v/live answered {response.status}")
            event = ""
            async for raw in response.content:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if line.startswith("event:"):
                    event = line.partition(":")[2].strip()
                elif line.startswith("data:") and event == "ticket":
                    number = json.loads(line.partition(":")[2]).get("number", "")
                    self.event_at.setdefault(number, time.perf_counter())
                    self.refresh()
                elif line.startswith("data:") and event == "offer":  # the card itself: shown at once
                    offer = json.loads(line.partition(":")[2])
                    now = time.perf_counter()
                    self.event_at.setdefault(offer["number"], now)
                    if f'id="offer-{offer["number"]}"' in offer["html"]:
                        self.shown_at.setdefault(offer["number"], now)
                        if offer["number"] == self.target:
                            self.shown_all.set()
                elif line.startswith("data:") and event == "ready":
                    self.ready.set()

    def refresh(self) -> None:
        """static/volunteer.js: one panel fetch at a time, one more if events came meanwhile."""
        if self.busy:
            self.again = True
            return
        self.busy = True
        task = asyncio.get_running_loop().create_task(self._fetch())
        self.fetches.add(task)
        task.add_done_callback(self.fetches.discard)

    async def _fetch(self) -> None:
        try:
            async with self.http.get("/v/panel") as response:
                html = await response.text()
            now = time.perf_counter()
            for number in re.findall(r'id="offer-(MH-\d{8}-\d+)"', html):
                self.shown_at.setdefault(number, now)
            if self.target and self.target in self.shown_at:
                self.shown_all.set()
        finally:
            self.busy = False
            if self.again:
                self.again = False
                self.refresh()


async def open_pages(
    url: str, codes: list[str], first: int
) -> tuple[list[Page], list[aiohttp.ClientSession]]:
    """A browser per invite code, logged in on /v (the form, its CSRF token, the code)."""
    sessions: list[aiohttp.ClientSession] = []
    gate = asyncio.Semaphore(20)

    async def log_in(i: int, code: str) -> Page:
        http = await browser(url, first + i)
        sessions.append(http)
        async with gate:
            form = FORM_CSRF.search(await (await http.get("/v")).text())
            if form is None:
                raise RuntimeError("no login form on /v")
            page = await (
                await http.post("/v/login", data={"code": code, "csrf_token": form.group(1)})
            ).text()
            if "登录成功" not in page:
                raise RuntimeError(f"login refused: {page[:300]!r}")
        return Page(http)

    return list(await asyncio.gather(*(log_in(i, c) for i, c in enumerate(codes)))), sessions


async def offers(url: str, db_url: str, args: argparse.Namespace, web_pid: int) -> dict[str, Any]:
    from sqlalchemy import func, select

    from tickets.catalogue import Catalogue, Role
    from tickets.channels import ChannelStore
    from tickets.db import create_engine, session_factory, unit_of_work
    from tickets.models import Offer
    from tickets.org import ResponderSpec, load_org, parse_org
    from tickets.service import NewTicket, TicketService

    catalogue = Catalogue.load()
    eldercare = dataclasses.replace(catalogue.categories["eldercare"], offer_to=args.pages + 100)
    catalogue = dataclasses.replace(catalogue, categories={**catalogue.categories, "eldercare": eldercare})
    engine = create_engine(db_url)
    service = TicketService(session_factory(engine), catalogue=catalogue)  # the action server's side
    try:
        spec = parse_org(REPO / "tests" / "fixtures" / "org.yml")
        tag = uuid.uuid4().hex[:6]
        codes = [f"bench-vol-{tag}-{i}" for i in range(args.pages)]
        spec.streets[0].responders += [
            ResponderSpec(
                code=c, name=f"志愿者{i}", role=Role.PARTY_VOLUNTEER, community="anju", grids=["anju-1"]
            )
            for i, c in enumerate(codes)
        ]
        started = time.perf_counter()
        async with unit_of_work(service.sessions) as session:
            await load_org(session, spec, catalogue)
        store = ChannelStore(service.sessions, service.clock)
        invites = [await store.create_invite(c) for c in codes]
        pages, sessions = await open_pages(url, invites, 5000)
        print(
            f"  {len(pages)} volunteers made, invited and logged in in {time.perf_counter() - started:.1f}s",
            flush=True,
        )
        try:
            listeners = [asyncio.create_task(p.listen()) for p in pages]
            started = time.perf_counter()
            await asyncio.wait_for(asyncio.gather(*(p.ready.wait() for p in pages)), 60)
            connected = time.perf_counter() - started
            resident = await service.resident_for(f"bench:offers-{tag}")
            await service.remember_resident(resident.id, community="anju", compound="安居苑")
            rounds: list[dict[str, Any]] = []
            for i in range(args.offers):
                idle_before = process_cpu(web_pid) or 0.0
                await asyncio.sleep(args.offer_gap)  # the streams open, nothing happening
                cpu_before = process_cpu(web_pid) or 0.0
                for p in pages:
                    p.shown_all.clear()
                sent = time.perf_counter()
                ticket = await service.create_ticket(
                    NewTicket(resident.id, "eldercare", OFFER_TEXT.format(i=i))
                )
                committed = time.perf_counter()
                for p in pages:
                    p.target = ticket.number
                    if ticket.number in p.shown_at:
                        p.shown_all.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.gather(*(p.shown_all.wait() for p in pages)), args.wait)
                async with service.sessions() as session:
                    offered = await session.scalar(
                        select(func.count()).select_from(Offer).where(Offer.ticket_id == ticket.id)
                    )
                event = [p.event_at[ticket.number] - committed for p in pages if ticket.number in p.event_at]
                shown = [p.shown_at[ticket.number] - committed for p in pages if ticket.number in p.shown_at]
                rounds.append(
                    {
                        "number": ticket.number,
                        "offered": offered,
                        "create_ms": (committed - sent) * 1000,
                        "event": summary(event),
                        "shown": summary(shown),
                        "lost": len(pages) - len(shown),
                        "web_cpu_s": (process_cpu(web_pid) or 0.0) - cpu_before,
                        "idle_cpu_pct": (cpu_before - idle_before) / args.offer_gap * 100,
                        "load": os.getloadavg()[0],
                    }
                )
                r = rounds[-1]
                print(
                    f"  {time.strftime('%H:%M:%S')} offer {i + 1}: shown on {r['shown']['n']}/{len(pages)} pages, "
                    f"p95 {r['shown']['p95']:.0f} ms, max {r['shown']['max']:.0f} ms, {load_line()}",
                    flush=True,
                )
            tasks = listeners + [t for p in pages for t in p.fetches]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            for http in sessions:
                await http.close()
        return {"pages": len(pages), "connected_s": connected, "rounds": rounds}
    finally:
        await engine.dispose()


def print_offers(result: dict[str, Any], args: argparse.Namespace) -> bool:
    from dashboard.app import LIVE_POLL_S

    print(
        f"\noffers to {result['pages']} open volunteer pages (all streams open in {result['connected_s']:.1f}s; "
        f"the web process's live poll every {args.live_every or LIVE_POLL_S} s; {load_line()})"
    )
    header = (
        f"{'ticket':<16} {'offered':>7} {'create ms':>9} {'event p50/p95/max ms':>21} "
        f"{'shown p50/p95/max ms':>21} {'shown':>6} {'lost':>5} {'web CPU s':>9} {'idle %':>6} {'load':>5}"
    )
    print(header)
    print("-" * len(header))
    met = True
    for r in result["rounds"]:
        e, s = r["event"], r["shown"]
        print(
            f"{r['number']:<16} {r['offered']:>7} {r['create_ms']:>9.0f} "
            f"{e['p50']:>7.0f}/{e['p95']:>5.0f}/{e['max']:>6.0f}  {s['p50']:>7.0f}/{s['p95']:>5.0f}/{s['max']:>6.0f}  "
            f"{s['n']:>6} {r['lost']:>5} {r['web_cpu_s']:>9.2f} {r['idle_cpu_pct']:>6.1f} {r['load']:>5.2f}"
        )
        met = met and r["lost"] == 0 and s["max"] <= 1000
    print(
        "event/shown: from the create's commit to the page's event / to the offer shown on it; web CPU s: the "
        "web process's CPU from the commit until every page showed it; idle %: its CPU while the streams "
        "were open and nothing happened (the live poll), in % of a core"
    )
    print(f"target: every page shows the offer within 1 s of the commit: {'met' if met else 'NOT met'}")
    return met


# ---------------------------------------------------------------------------------------------- main


@contextlib.asynccontextmanager
async def scratch_database(args: argparse.Namespace, tmp: Path) -> AsyncIterator[str]:
    """A fresh database with the test org: SQLite in `tmp`, or a PostgreSQL one dropped after."""
    from alembic import command

    from tickets.catalogue import Catalogue
    from tickets.db import alembic_config, create_engine, session_factory, unit_of_work
    from tickets.org import load_org, parse_org

    name = ""
    if args.db == "postgres":
        name = f"minhu_bench_webchat_{uuid.uuid4().hex[:8]}"
        await pg_admin(args.pg, f'CREATE DATABASE "{name}"')
        db_url = pg_url(args.pg, name)
    else:
        db_url = f"sqlite+aiosqlite:///{tmp}/minhu.db"
    try:
        await asyncio.to_thread(command.upgrade, alembic_config(db_url), "head")
        engine = create_engine(db_url)
        async with unit_of_work(session_factory(engine)) as session:
            await load_org(session, parse_org(REPO / "tests" / "fixtures" / "org.yml"), Catalogue.load())
        await engine.dispose()
        yield db_url
    finally:
        if name:
            with contextlib.suppress(Exception):
                await pg_admin(args.pg, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.asynccontextmanager
async def assistant(
    args: argparse.Namespace, settings: Any
) -> AsyncIterator[tuple[str, dict[str, list[int]]]]:
    """Rasa's URL and the processes (for their CPU): the real stack, or --rasa-url (a running one, or the
    tests' fake)."""
    if args.rasa_url:
        yield args.rasa_url, {}
        return
    from minhu.stack import local_stack
    from tests.e2e.conftest import free_port

    action_port, rasa_port = free_port(), free_port()
    async with local_stack(settings, action_port=action_port, rasa_port=rasa_port, model=args.model) as url:
        yield url, {"rasa": stack_processes(rasa_port), "actions": stack_processes(action_port)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from app.settings import Settings
    from app.wiring import configure_data_keys

    results: dict[str, Any] = {}
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {args.db}, {load_line()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="minhu-webchat-bench-") as folder:
        tmp = Path(folder)
        # The key file in tmp, for every process, before the org's phones are written.
        configure_data_keys(Settings.model_validate({"MINHU_DATA_DIR": tmp}))
        async with scratch_database(args, tmp) as db_url:
            settings = Settings.model_validate({"MINHU_DATA_DIR": tmp, "DATABASE_URL": db_url})
            async with assistant(args, settings) as (rasa_url, pids):
                profile = tmp / "web.prof" if args.profile else None
                with contextlib.ExitStack() as processes:
                    web_url, web_pid = processes.enter_context(
                        web_process(tmp, db_url, rasa_url, args.live_every, profile)
                    )
                    webs = {"web": (web_url, web_pid)}
                    if args.old:
                        old = old_code(args.old, tmp / "old")
                        webs["web-old"] = processes.enter_context(
                            web_process(tmp, db_url, rasa_url, args.live_every, None, old)
                        )
                    pids = {"web": [web_pid], **pids}
                    if "chat" in args.parts:
                        results["chat"] = await chat(webs, rasa_url, args, pids)
                        results["chat_met"] = print_chat(results["chat"], args)
                    if "offers" in args.parts:
                        results["offers"] = await offers(web_url, db_url, args, web_pid)
                        results["offers_met"] = print_offers(results["offers"], args)
                if profile:
                    print_profile(profile)
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} done, {load_line()}")
    return results


def old_code(ref: str, folder: Path) -> Path:
    """The checkout of an older commit (`git archive`) for --old."""
    folder.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--pg", default=DEFAULT_PG, help=f"PostgreSQL server (default {DEFAULT_PG})")
    p.add_argument("--parts", default="chat,offers", help="chat, offers or both (chat,offers)")
    p.add_argument("--residents", type=int, default=50, help="concurrent web residents (50)")
    p.add_argument(
        "--think", type=float, default=3.0, help="mean seconds a resident pauses before answering (3)"
    )
    p.add_argument(
        "--warmup-think", type=float, help="the warm-up's mean think time, s (default: --think; not timed)"
    )
    p.add_argument(
        "--warmup-rounds", type=int, default=1, help="warm-up conversations per path and resident (1)"
    )
    p.add_argument(
        "--rounds", type=int, default=2, help="web/REST phase pairs, alternating (2: web rest rest web)"
    )
    p.add_argument("--pages", type=int, default=500, help="open volunteer pages (500)")
    p.add_argument("--offers", type=int, default=3, help="offers dispatched, one after another (3)")
    p.add_argument("--offer-gap", type=float, default=2.0, help="seconds before each offer (2)")
    p.add_argument("--wait", type=float, default=15.0, help="seconds to wait for every page to show one (15)")
    p.add_argument(
        "--live-every", type=float, help="the web process's live poll interval, s (default: make_app's)"
    )
    p.add_argument("--model", help="a model file (default: scripts/rasa-train.sh's for the current inputs)")
    p.add_argument("--rasa-url", help="a running Rasa (REST channel) instead of starting the stack")
    p.add_argument(
        "--together",
        action="store_true",
        help="each phase runs --residents on the web and as many on REST at the same time (not with --old)",
    )
    p.add_argument("--old", help="also an older commit's web process, its phases interleaved (web-old)")
    p.add_argument("--old-first", action="store_true", help="web-old's phase first in each round (not web's)")
    p.add_argument("--profile", action="store_true", help="print the web process's CPU profile (cProfile)")
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the web process
    return p


def main() -> int:
    options = parser()
    args = options.parse_args()
    if args.together and args.old:
        options.error("--together compares the web with REST side by side: not with --old")
    if args.serve:
        serve()
        return 0
    sys.path.insert(0, str(REPO))
    results = asyncio.run(run(args))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
