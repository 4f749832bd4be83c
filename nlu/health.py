"""Rasa's /healthz, /readyz and /metrics (as every Minhu process has), added to Rasa's own Sanic app by
nlu/rasa_server.py (`install`). Runs in the Rasa venv (imports nothing from the app).

- /healthz: the server answers (it listens only once its model is loaded). 200, always.
- /readyz: what Rasa needs to answer a resident: its model loaded, its conversation store (the SQL tracker
  store: `SELECT 1`), its lock store (Redis: PING) and the action server (rasa-sdk's /health, at the
  action endpoint's address). A store that is Rasa's in-memory default is not checked. 200 when all answer
  within CHECK_TIMEOUT, 503 otherwise; the body says which (JSON: "ok" or the error's type).
- /metrics: Prometheus text (prometheus-client): request latency by route
  (`minhu_http_request_duration_seconds`, as the app's), each custom action's latency by outcome
  (`minhu_rasa_action_duration_seconds`: `ok` or `failed`, the action server down or failing), failed
  actions by error type (`minhu_rasa_action_errors`) and the conversation store's failures
  (`minhu_rasa_store_errors`: conversations then kept in memory, nlu/rasa_server.py).

None of these needs Rasa's API token: they say nothing of any conversation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

CHECK_TIMEOUT = 2.0  # seconds a readiness check may take

REGISTRY = CollectorRegistry(auto_describe=True)
REQUESTS = Histogram(
    "minhu_http_request_duration_seconds",
    "Time to answer an HTTP request, by route",
    ["method", "route", "status"],
    registry=REGISTRY,
)
ACTIONS = Histogram(
    "minhu_rasa_action_duration_seconds",
    "Time to run a custom action on the action server, by action and outcome",
    ["action", "outcome"],
    registry=REGISTRY,
)
ACTION_ERRORS = Counter(
    "minhu_rasa_action_errors", "Custom actions that failed, by action and error type", ["action", "error"],
    registry=REGISTRY,
)  # fmt: skip
STORE_ERRORS = Counter(
    "minhu_rasa_store_errors",
    "Failures of the conversation store, by error type",
    ["error"],
    registry=REGISTRY,
)


def note_store_error(error: BaseException) -> None:
    STORE_ERRORS.labels(type(error).__name__).inc()


def time_remote_actions() -> None:
    """Each custom action's call to the action server timed, and its failures counted (installed before
    nlu/rasa_server.py's answer for a failed action, so it sees them)."""
    from rasa.core.actions.action import ActionExecutionRejection, RemoteAction

    original = RemoteAction.run

    async def run(self: RemoteAction, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            events = await original(self, *args, **kwargs)
        except ActionExecutionRejection:  # a form's "not me": the action answered
            ACTIONS.labels(self.name(), "ok").observe(time.perf_counter() - started)
            raise
        except Exception as error:
            ACTIONS.labels(self.name(), "failed").observe(time.perf_counter() - started)
            ACTION_ERRORS.labels(self.name(), type(error).__name__).inc()
            raise
        ACTIONS.labels(self.name(), "ok").observe(time.perf_counter() - started)
        return events

    RemoteAction.run = run


# --- readiness -----------------------------------------------------------------------------------------


def _checks(agent: Any) -> dict[str, Callable[[], Awaitable[None]]]:
    """What this Rasa depends on, each as a check that raises when it does not answer."""
    from rasa.core.lock_store import RedisLockStore
    from rasa.core.tracker_store import FailSafeTrackerStore, SQLTrackerStore

    from nlu.lock_store import LeasedRedisLockStore

    async def model() -> None:
        if agent is None or not agent.is_ready():
            raise RuntimeError("no model")

    checks: dict[str, Callable[[], Awaitable[None]]] = {"model": model}
    if agent is None:
        return checks
    store = agent.tracker_store
    if isinstance(store, FailSafeTrackerStore):
        store = store._tracker_store
    if isinstance(store, SQLTrackerStore):

        def select_one() -> None:
            import sqlalchemy as sa

            with store.engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))

        checks["tracker_store"] = lambda: asyncio.to_thread(select_one)
    locks = agent.lock_store
    if isinstance(locks, LeasedRedisLockStore):
        checks["lock_store"] = locks.ping
    elif isinstance(locks, RedisLockStore):
        checks["lock_store"] = lambda: asyncio.to_thread(locks.red.ping)
    endpoint = agent.action_endpoint
    if endpoint is not None and endpoint.url:
        health = endpoint.url.rsplit("/webhook", 1)[0].rstrip("/") + "/health"

        async def action_server() -> None:
            timeout = aiohttp.ClientTimeout(total=CHECK_TIMEOUT)
            async with aiohttp.ClientSession(timeout=timeout) as http, http.get(health) as answer:
                if answer.status != 200:
                    raise RuntimeError(f"HTTP {answer.status}")

        checks["action_server"] = action_server
    return checks


async def ready(agent: Any) -> dict[str, str]:
    """Each dependency's state: "ok" or the type of its error."""
    checks = _checks(agent)

    async def state(check: Callable[[], Awaitable[None]]) -> str:
        try:
            await asyncio.wait_for(check(), CHECK_TIMEOUT)
        except Exception as error:  # any failure means not ready; its kind is the answer
            return type(error).__name__
        return "ok"

    states = await asyncio.gather(*(state(check) for check in checks.values()))
    return dict(zip(checks, states, strict=True))


# --- the routes ----------------------------------------------------------------------------------------


async def healthz(_request: Request) -> HTTPResponse:
    return response.json({"alive": True})


async def readyz(request: Request) -> HTTPResponse:
    states = await ready(getattr(request.app.ctx, "agent", None))
    ok = all(state == "ok" for state in states.values())
    return response.json(states, status=200 if ok else 503)


async def metrics(_request: Request) -> HTTPResponse:
    return response.raw(generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _started(request: Request) -> None:
    request.ctx.minhu_started = time.perf_counter()


async def _timed(request: Request, answer: HTTPResponse) -> None:
    started = getattr(request.ctx, "minhu_started", None)
    if started is not None:  # by route pattern, not path (a conversation id would make a series each)
        route = request.uri_template if request.route is not None else "unmatched"
        REQUESTS.labels(request.method, route, str(answer.status)).observe(time.perf_counter() - started)


def attach(app: Sanic) -> None:
    """The three routes on Rasa's app, its requests timed (before it starts)."""
    app.add_route(healthz, "/healthz", methods=["GET"], name="minhu_healthz")
    app.add_route(readyz, "/readyz", methods=["GET"], name="minhu_readyz")
    app.add_route(metrics, "/metrics", methods=["GET"], name="minhu_metrics")
    app.register_middleware(_started, "request")
    app.register_middleware(_timed, "response")
