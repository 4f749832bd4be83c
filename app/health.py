"""Every process's /healthz, /readyz and /metrics, for a deployment of replicas (docs/deploy.md) to check
and scrape.

- /healthz: the process is alive (its event loop answers). 200, always.
- /readyz: it can do its work: its database answers, Redis answers when one is configured, Rasa answers when
  the process talks to Rasa. 200 when all do, 503 otherwise; the body says which (JSON).
- /metrics: Prometheus text (prometheus-client): HTTP request latency per route (the web app), tickets by
  status, the outbox backlog and the age of its oldest undelivered row, the last sweep of this process, and
  its relay errors (Rasa unreachable or failing).

The web app (dashboard) gets these on its own server (`install`); a process with no HTTP server of its own
(sweeper, deliverer, bot) gets a tiny one on MINHU_HEALTH_PORT (`health_server`), off by default so `make
run` starts exactly what it did."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from tickets.channels import ChannelStore
from tickets.service import TicketService

log = structlog.get_logger("app.health")

CHECK_TIMEOUT = 2.0  # seconds a readiness check may take

# What this process did, kept by the code that does it (the sweeper, the relay) and read at each scrape.
_last_sweep: float | None = None
_relay_errors: Counter[str] = Counter()


def note_sweep(at: float | None = None) -> None:
    """A deadline sweep of this process finished (unix time)."""
    global _last_sweep
    _last_sweep = time.time() if at is None else at


def note_relay_error(reason: str) -> None:
    """A message could not be relayed to Rasa (`reason`: the kind of failure, e.g. HTTP 500)."""
    _relay_errors[reason] += 1


class Health:
    """One process's probes and metrics over its service."""

    def __init__(self, service: TicketService, *, redis_url: str | None = None, rasa_url: str | None = None):
        self.service, self.redis_url, self.rasa_url = service, redis_url, rasa_url
        self.store = ChannelStore(service.sessions, service.clock)
        self.registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram(
            "minhu_http_request_duration_seconds",
            "Time to answer an HTTP request, by route",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.registry.register(self)  # the figures read at each scrape (collect)
        self._figures: list[Metric] = []

    # ------------------------------------------------------------------------------------- checks

    async def _database(self) -> None:
        await self.service.tickets_by_status()

    async def _redis(self) -> None:
        from redis import asyncio as aioredis

        client: Any = aioredis.from_url(  # type: ignore[no-untyped-call]
            self.redis_url, socket_timeout=CHECK_TIMEOUT, socket_connect_timeout=CHECK_TIMEOUT
        )
        try:
            await client.ping()
        finally:
            await client.aclose()

    async def _rasa(self) -> None:
        """One Rasa replica answers (MINHU_RASA_URL may name several: the relay fails over, app/relay.py)."""
        from app.relay import rasa_urls

        timeout = aiohttp.ClientTimeout(total=CHECK_TIMEOUT)
        failure: Exception = RuntimeError("no Rasa address")
        async with aiohttp.ClientSession(timeout=timeout) as http:
            for url in rasa_urls(str(self.rasa_url)):
                try:
                    async with http.get(url) as response:
                        if response.status == 200:
                            return
                        failure = RuntimeError(f"HTTP {response.status}")
                except (aiohttp.ClientError, TimeoutError) as error:
                    failure = error
        raise failure

    async def ready(self) -> dict[str, str]:
        """Each dependency's state: "ok" or why not."""
        checks: dict[str, Callable[[], Awaitable[None]]] = {"database": self._database}
        if self.redis_url:
            checks["redis"] = self._redis
        if self.rasa_url:
            checks["rasa"] = self._rasa

        async def state(check: Callable[[], Awaitable[None]]) -> str:
            try:
                await asyncio.wait_for(check(), CHECK_TIMEOUT)
            except Exception as error:  # any failure means not ready; its kind is the answer
                return type(error).__name__
            return "ok"

        states = await asyncio.gather(*(state(check) for check in checks.values()))
        return dict(zip(checks, states, strict=True))

    # ------------------------------------------------------------------------------------ metrics

    async def refresh(self) -> None:
        """Read the figures the database holds (at each scrape: they are the whole deployment's)."""
        by_status = await self.service.tickets_by_status()
        backlog = await self.store.backlog()
        tickets = GaugeMetricFamily("minhu_tickets", "Tickets by status", labels=["status"])
        for status, n in by_status.items():
            tickets.add_metric([status.value], n)
        figures: list[Metric] = [
            tickets,
            GaugeMetricFamily(
                "minhu_outbox_backlog", "Notifications waiting to be pushed", value=backlog.pending
            ),
            GaugeMetricFamily(
                "minhu_outbox_oldest_age_seconds",
                "Age of the oldest undelivered notification (0 when none waits)",
                value=backlog.lag(self.service.clock.now()).total_seconds(),
            ),
        ]
        self._figures = figures

    def collect(self) -> Iterator[Metric]:
        yield from self._figures
        if _last_sweep is not None:
            yield GaugeMetricFamily(
                "minhu_last_sweep_timestamp_seconds",
                "When this process last finished a sweep",
                value=_last_sweep,
            )
        errors = CounterMetricFamily(
            "minhu_relay_errors", "Messages this process could not relay", labels=["reason"]
        )
        for reason, n in sorted(_relay_errors.items()):
            errors.add_metric([reason], n)
        yield errors

    def describe(self) -> list[Metric]:
        return []  # the families change with each scrape

    # --------------------------------------------------------------------------------------- HTTP

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"alive": True})

    async def readyz(self, _request: web.Request) -> web.Response:
        states = await self.ready()
        ok = all(state == "ok" for state in states.values())
        return web.json_response(states, status=200 if ok else 503)

    async def metrics(self, _request: web.Request) -> web.Response:
        try:
            await self.refresh()
        except Exception as error:  # the database away: still serve what the process knows
            log.warning("metrics: figures unavailable", error=type(error).__name__)
            self._figures = []
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    @web.middleware
    async def timing(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Request latency by route pattern (not by path: ticket numbers would make a series each)."""
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as error:
            status = error.status
            raise
        finally:
            info = request.match_info.route.resource
            route = info.canonical if info is not None else "unmatched"
            self.latency.labels(request.method, route, str(status)).observe(time.perf_counter() - started)

    def install(self, app: web.Application, *, timing: bool = True) -> None:
        """The three endpoints on `app`, and (`timing`) its requests timed; before the app starts."""
        if timing:
            app.middlewares.insert(0, self.timing)  # outermost: the error pages' time counts too
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics)


@asynccontextmanager
async def health_server(health: Health, host: str, port: int) -> AsyncIterator[str | None]:
    """A process's own little server for the three endpoints; port 0: none (yields None)."""
    if not port:
        yield None
        return
    app = web.Application()
    health.install(app, timing=False)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        bound_host, bound_port = runner.addresses[0][:2]
        yield f"http://{bound_host}:{bound_port}"
    finally:
        await runner.cleanup()
