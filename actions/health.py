"""The action server's /healthz, /readyz and /metrics (as every Minhu process has, app/health.py), on rasa-sdk's
own Sanic app: this module is an rasa-sdk plugin (`attach_sanic_app_extensions`, registered by the `actions`
package in every worker process, like actions/guard.py).

- /healthz: the worker's event loop answers. 200, always.
- /readyz: its database answers (the ticket service opened, a query answered within CHECK_TIMEOUT): 200, or
  503 with the reason, as JSON (`{"database": "ok"}`).
- /metrics: Prometheus text (prometheus-client): the latency of its HTTP requests by route
  (`minhu_http_request_duration_seconds`, the web app's name), of each action by name and outcome
  (`minhu_action_duration_seconds`: `ok`, or `failed` when actions/guard.py answered for it), its failed
  actions by error type (`minhu_action_errors`), and whether requests wait in its file for the database
  (`minhu_action_pending_requests`). The deployment's ticket and outbox figures are the web app's and the
  deliverers' to give, not repeated here.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pluggy
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from sanic import HTTPResponse, Request, Sanic, response
from sanic.response import BaseHTTPResponse

from app.health import CHECK_TIMEOUT, Health
from tickets.service import TicketService

hookimpl = pluggy.HookimplMarker("rasa_sdk")

REGISTRY = CollectorRegistry(auto_describe=True)
REQUESTS = Histogram(
    "minhu_http_request_duration_seconds",
    "Time to answer an HTTP request, by route",
    ["method", "route", "status"],
    registry=REGISTRY,
)
ACTIONS = Histogram(
    "minhu_action_duration_seconds",
    "Time to run a custom action, by action and outcome (failed: the guard answered for it)",
    ["action", "outcome"],
    registry=REGISTRY,
)
ACTION_ERRORS = Counter(
    "minhu_action_errors", "Custom actions that failed, by action and error type", ["action", "error"],
    registry=REGISTRY,
)  # fmt: skip
PENDING = Gauge(
    "minhu_action_pending_requests",
    "1 while requests saved when the database was away wait in this process's file, else 0",
    registry=REGISTRY,
)


def note_action(action: str, seconds: float, error: BaseException | None = None) -> None:
    """One run of `action` (actions/guard.py): its time, and its error when it failed."""
    ACTIONS.labels(action, "ok" if error is None else "failed").observe(seconds)
    if error is not None:
        ACTION_ERRORS.labels(action, type(error).__name__).inc()


class Probes:
    """The checks over the action server's runtime (actions/runtime.RUNTIME)."""

    def __init__(self) -> None:
        self._health: Health | None = None

    async def _service(self) -> TicketService:
        from actions.runtime import RUNTIME  # the actions' runtime: imported with the actions, not before

        return await RUNTIME.service()

    async def ready(self) -> dict[str, str]:
        try:
            service = await asyncio.wait_for(self._service(), CHECK_TIMEOUT)
        except Exception as error:  # the database cannot be opened: not ready, and why
            return {"database": type(error).__name__}
        if self._health is None or self._health.service is not service:
            self._health = Health(service)
        return await self._health.ready()

    def pending(self) -> bool:
        from actions.runtime import RUNTIME

        return RUNTIME.pending.waiting()


PROBES = Probes()


async def healthz(_request: Request) -> HTTPResponse:
    return response.json({"alive": True})


async def readyz(_request: Request) -> HTTPResponse:
    states = await PROBES.ready()
    ok = all(state == "ok" for state in states.values())
    return response.json(states, status=200 if ok else 503)


async def metrics(_request: Request) -> HTTPResponse:
    PENDING.set(1 if PROBES.pending() else 0)
    return HTTPResponse(generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _started(request: Request) -> None:
    request.ctx.minhu_started = time.perf_counter()


async def _timed(request: Request, answer: BaseHTTPResponse) -> None:
    started = getattr(request.ctx, "minhu_started", None)
    if started is not None:  # by route pattern, not path (unmatched: 404s of any path)
        route = request.uri_template if request.route is not None else "unmatched"
        REQUESTS.labels(request.method, route, str(answer.status)).observe(time.perf_counter() - started)


@hookimpl
def attach_sanic_app_extensions(app: Sanic[Any, Any]) -> None:
    """rasa-sdk's hook, called on each app it builds (in every worker): the three routes, requests timed."""
    app.add_route(healthz, "/healthz", methods=["GET"], name="minhu_healthz")
    app.add_route(readyz, "/readyz", methods=["GET"], name="minhu_readyz")
    app.add_route(metrics, "/metrics", methods=["GET"], name="minhu_metrics")
    app.register_middleware(_started, "request")
    app.register_middleware(_timed, "response")
