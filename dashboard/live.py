"""Live updates (/live, server-sent events). One poller per application reads the ticket events written since
the last one it saw (TicketService.events_after: the events table, so tickets made by the action server's
process or another dashboard arrive too, on SQLite and PostgreSQL alike) and hands each to the queues of
the connected staff whose scope it is in. A client that reconnects sends Last-Event-ID and gets what it
missed first. The queue page's script (static/queue.js) refreshes its rows on each event; the volunteer
page (dashboard/volunteer.py) listens on the same hub, scoped to its responder's area, through `stream`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web
from aiohttp_sse import sse_response

from dashboard.auth import signed_in
from dashboard.keys import LIVE_EVERY, SERVICE
from tickets.models import Status, TicketEvent
from tickets.service import TicketService
from tickets.transitions import Action

log = logging.getLogger(__name__)
QUEUE_SIZE = 1000
RESUME_LIMIT = 500
RECHECK_EVERY = 15.0  # seconds: a disabled account's open stream ends within this
OFFERING = frozenset({Action.DISPATCH, Action.REASSIGN})  # the events whose data may name responders offered


class Scope(Protocol):
    """Whose area a listener sees: a community, or a whole street (community None)."""

    @property
    def street_id(self) -> int: ...

    @property
    def community_id(self) -> int | None: ...


@dataclass(frozen=True)
class Update:
    id: int
    street_id: int
    community_id: int
    payload: str  # JSON: number, action, status label
    number: str = ""
    action: str = ""
    offered: frozenset[int] = frozenset()  # the responders a dispatch offered the ticket to (抢单)
    assignee: int | None = None  # the responder a dispatch assigned it to

    @property
    def concerns(self) -> frozenset[int]:
        """The responders a dispatch's event names (offered or assigned)."""
        return self.offered | {self.assignee} if self.assignee is not None else self.offered

    def visible_to(self, scope: Scope) -> bool:
        if scope.community_id is None:
            return self.street_id == scope.street_id
        return self.community_id == scope.community_id


def _update(event: TicketEvent, number: str, street_id: int, community_id: int) -> Update:
    status = Status(event.to_status).label if event.to_status else ""
    payload = json.dumps({"number": number, "action": event.action, "status": status}, ensure_ascii=False)
    data = (event.data or {}) if event.action in OFFERING else {}
    offered, assignee = data.get("offered"), data.get("assignee")
    ids = frozenset(i for i in offered if isinstance(i, int)) if isinstance(offered, list) else frozenset()
    to = assignee if isinstance(assignee, int) else None
    return Update(event.id, street_id, community_id, payload, number, event.action, ids, to)


# How a listener's page is told of an update: (event name, data), or None for nothing; the plain `ticket`
# event unless the page's own `tell` says otherwise (the volunteer page: an offer to its responder comes
# with the offer itself, and what cannot change its panel is not sent).
Tell = Callable[[Update], Awaitable[tuple[str, str] | None]]


async def tell_ticket(update: Update) -> tuple[str, str] | None:
    return "ticket", update.payload


@dataclass(eq=False)  # by identity: one per connection
class Listener:
    scope: Scope
    queue: asyncio.Queue[Update | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))


class Hub:
    """The one poller and the connected listeners."""

    def __init__(self, service: TicketService, every: float) -> None:
        self.service = service
        self.every = every
        self.last_id = 0
        self.listeners: set[Listener] = set()

    async def run(self) -> None:
        self.last_id = await self.service.last_event_id()
        while True:
            try:
                await self.poll()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database is away a moment: try again next round
                log.warning("live updates: polling failed", exc_info=True)
            await asyncio.sleep(self.every)

    async def poll(self) -> None:
        while True:
            events = await self.service.events_after(self.last_id)
            for row in events:
                update = _update(*row)
                self.last_id = update.id
                for listener in list(self.listeners):
                    if update.visible_to(listener.scope):
                        try:
                            listener.queue.put_nowait(update)
                        except asyncio.QueueFull:  # a stalled client: cut it, it resumes by Last-Event-ID
                            self.listeners.discard(listener)
                            listener.queue = asyncio.Queue(1)
                            listener.queue.put_nowait(None)
            if len(events) < 200:
                return

    def stop(self) -> None:
        for listener in self.listeners:
            with contextlib.suppress(asyncio.QueueFull):
                listener.queue.put_nowait(None)


HUB = web.AppKey("live_hub", Hub)


async def stream(
    request: web.Request,
    scope: Scope,
    still_allowed: Callable[[], Awaitable[bool]],
    tell: Tell = tell_ticket,
) -> web.StreamResponse:
    """Server-sent events of the tickets in `scope`'s area until the client goes; `still_allowed` is asked
    after a quiet while (a disabled account's or unbound browser's stream ends); `tell`: each update as the
    page is told it."""
    hub = request.app[HUB]
    listener = Listener(scope)
    hub.listeners.add(listener)  # before the catch-up, so nothing falls between the two
    sent = hub.last_id  # what the queue may already hold at or below this was before the client came
    try:
        async with sse_response(request) as response:
            # The page went away mid-send (a reload, a link): nothing to report, the stream just ends.
            with contextlib.suppress(ConnectionResetError):
                resume = request.headers.get("Last-Event-ID", "")
                if resume.isdigit() and len(resume) < 19 and int(resume) < hub.last_id:
                    sent = int(resume)
                    for row in await hub.service.events_after(sent, RESUME_LIMIT):
                        update = _update(*row)
                        if update.id > hub.last_id:
                            break
                        if update.visible_to(scope) and (told := await tell(update)):
                            await response.send(told[1], id=str(update.id), event=told[0])
                        sent = update.id
                await response.send("{}", event="ready")
                while response.is_connected():
                    try:
                        item = await asyncio.wait_for(listener.queue.get(), RECHECK_EVERY)
                    except TimeoutError:  # a quiet while: is the account still allowed in?
                        if not await still_allowed():
                            break
                        continue
                    if item is None:
                        break
                    if item.id > sent:
                        if told := await tell(item):
                            await response.send(told[1], id=str(item.id), event=told[0])
                        sent = item.id
    finally:
        hub.listeners.discard(listener)
    return response


async def live(request: web.Request) -> web.StreamResponse:
    user = await signed_in(request)
    service = request.app[HUB].service

    async def still_allowed() -> bool:
        return await service.staff_login(user.account_id) is not None

    return await stream(request, user, still_allowed)


async def _hub(app: web.Application) -> AsyncIterator[None]:
    hub = app[HUB] = Hub(app[SERVICE], app[LIVE_EVERY])
    poller = asyncio.create_task(hub.run())
    yield
    hub.stop()
    poller.cancel()
    await asyncio.gather(poller, return_exceptions=True)


async def _stop_listeners(app: web.Application) -> None:
    app[HUB].stop()  # open streams end before the server waits for its handlers


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(_hub)
    app.on_shutdown.append(_stop_listeners)
    app.router.add_get("/live", live, name="live")
