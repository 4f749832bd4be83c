"""What the actions need at run time: the ticket service (opened from the settings on first use, or set
by tests), the guide, the pending-request store, and a time limit for every call into the core."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import time
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import structlog

from app.loops import run_forever
from app.settings import Settings, get_settings
from app.wiring import open_service
from tickets.catalogue import Catalogue
from tickets.clock import SystemClock
from tickets.create import MAX_BACKDATE
from tickets.errors import DomainError, TooManyTickets
from tickets.guide import Guide
from tickets.models import Urgency
from tickets.service import Intake, NewTicket, TicketService

log = structlog.get_logger("actions")
T = TypeVar("T")

# Rasa waits for the action server (its default timeout is far longer); we answer well within a few
# seconds even when the database hangs, saving the request for a retry instead.
CALL_TIMEOUT = float(os.environ.get("MINHU_ACTION_TIMEOUT", "8"))
# The org's communities, compounds and responders' names are asked for on nearly every form turn and
# change only when staff load a new org chart: read them at most once a minute.
ORG_DATA_TTL_S = 60.0
# Requests saved while the database was away are registered by the action server itself, a round every
# this many seconds while any wait (app.loops.run_forever): within a minute of the database coming back.
REPLAY_EVERY_S = 20.0


class Runtime:
    def __init__(self) -> None:
        self._service: TicketService | None = None
        self._stack: AsyncExitStack | None = None
        self._lock: asyncio.Lock | None = None
        self._guide: Guide | None = None
        self._catalogue: Catalogue | None = None
        self._pending: PendingStore | None = None
        self.residents: dict[str, int] = {}  # channel id -> resident id (ids never change)
        self._tasks: set[asyncio.Task[object]] = set()
        self._org_data: dict[str, tuple[float, Any]] = {}
        self.monotonic: Callable[[], float] = time.monotonic  # tests move it on
        self.replay_every = REPLAY_EVERY_S
        self._replaying: asyncio.Task[None] | None = None

    async def org_data(self, key: str, read: Callable[[], Awaitable[T]]) -> T:
        """`read()`'s result, kept for ORG_DATA_TTL_S (see there), and beyond while reading fails."""
        held = self._org_data.get(key)
        if held is not None and self.monotonic() < held[0]:
            return held[1]  # type: ignore[no-any-return]
        try:
            value = await within(read)
        except Exception as error:
            if held is None:
                raise
            # The database is away: what was read a while ago is still right (org charts change
            # rarely); the form can go on and the request is saved when it is submitted.
            log.warning("org data kept while the database is away", key=key, error=type(error).__name__)
            return held[1]  # type: ignore[no-any-return]
        self._org_data[key] = (self.monotonic() + ORG_DATA_TTL_S, value)
        return value

    def forget(self, key: str) -> None:
        self._org_data.pop(key, None)

    def background(self, work: Coroutine[object, object, object]) -> None:
        """Run work after the reply (a reference is kept until it is done)."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def set_service(self, service: TicketService | None, pending: PendingStore | None = None) -> None:
        """Tests (and embedders) hand over their own service."""
        if self._replaying is not None:
            self._replaying.cancel()
            self._replaying = None
        self._service = service
        self._pending = pending
        self.residents.clear()
        self._org_data.clear()

    async def service(self) -> TicketService:
        """The ticket service, opened on first use (within CALL_TIMEOUT); a database that cannot be
        opened raises CoreUnavailable (never a domain error a resident would be shown), and the next
        call tries again."""
        self.replay_soon()
        if self._service is None:
            if self._lock is None:
                self._lock = asyncio.Lock()
            try:
                async with asyncio.timeout(CALL_TIMEOUT), self._lock:
                    if self._service is None:
                        stack = AsyncExitStack()
                        self._service = await stack.enter_async_context(open_service(get_settings()))
                        self._stack = stack
                        log.info("action server connected", database=get_settings().db_url.split("@")[-1])
            except Exception as error:
                raise CoreUnavailable(type(error).__name__) from error
        return self._service

    def now(self) -> datetime:
        """The service's clock (a test's ManualClock), or the system's before the service is open."""
        return (self._service.clock if self._service is not None else SystemClock()).now()

    def save_for_retry(self, request: PendingRequest) -> None:
        """Keep a request the core could not take now, with the time the resident made it; the replay
        loop registers it once the database is back."""
        request.saved_at = request.saved_at or self.now().isoformat()
        self.pending.add(request)
        self.replay_soon()

    def replay_soon(self) -> None:
        """Start the replay loop of this process when requests wait (at most one: it goes on once
        started, a round costs a look at the file while nothing waits)."""
        running = self._replaying
        if running is not None and not running.done() and running.get_loop() is asyncio.get_running_loop():
            return
        if self.pending.waiting():
            self._replaying = asyncio.create_task(self._replay_forever())

    async def _replay_forever(self) -> None:
        await asyncio.sleep(self.replay_every)  # the database has just failed: not at once
        await run_forever(
            self._replay_round, self.replay_every, name="pending replay", max_backoff=3 * self.replay_every
        )

    async def _replay_round(self) -> None:
        if not self.pending.waiting():
            return
        try:
            service = await self.service()
        except CoreUnavailable as error:  # still away: the next round tries again, at the same pace
            log.warning("saved requests wait for the database", error=str(error))
            return
        await self.pending.replay(service)

    @property
    def catalogue(self) -> Catalogue:
        """The service catalogue (categories and their names): a file, there even when the database
        is not."""
        if self._service is not None:
            return self._service.catalogue
        if self._catalogue is None:
            self._catalogue = Catalogue.load()
        return self._catalogue

    @property
    def guide(self) -> Guide:
        if self._guide is None:
            self._guide = Guide.load()
        return self._guide

    @property
    def pending(self) -> PendingStore:
        if self._pending is None:
            self._pending = PendingStore.for_settings(get_settings())
        return self._pending


class CoreUnavailable(Exception):
    """The ticket service could not be opened (database down, hanging or not migrated)."""


RUNTIME = Runtime()


async def within(call: Callable[[], Awaitable[T]]) -> T:
    """Run one call into the core within CALL_TIMEOUT seconds (TimeoutError otherwise)."""
    async with asyncio.timeout(CALL_TIMEOUT):
        return await call()


@dataclass
class PendingRequest:
    """A resident's request that could not be stored when they made it (database or dispatch failing)."""

    channel_id: str
    category: str
    text: str
    community: str | None = None
    compound: str | None = None
    address: str | None = None
    phone: str | None = None
    urgency: str = Urgency.NORMAL.value
    saved_at: str = ""
    kind: str = "request"  # or "handoff" (转人工: text is the conversation, masked)


class PendingStore:
    """JSON lines under the data folder: a file keeps working when the database does not. Each line is
    written and fsynced before the resident is told it is saved; replay() registers them later."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = asyncio.Lock()

    @classmethod
    def for_settings(cls, settings: Settings) -> PendingStore:
        return cls(settings.data_dir / "pending_requests.jsonl")

    def add(self, request: PendingRequest) -> None:
        request.saved_at = request.saved_at or datetime.now(UTC).isoformat()
        self._append(self.path, request)

    @staticmethod
    def _append(path: Path, request: PendingRequest) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(asdict(request), ensure_ascii=False) + "\n"
        with path.open("a", encoding="utf-8") as file:
            file.write(line)
            file.flush()
            os.fsync(file.fileno())

    @property
    def _claimed(self) -> Path:
        return self.path.with_suffix(".replaying")

    @property
    def rejected(self) -> Path:
        """Saved requests the core refused for good (an unknown category, a hand-off without a community):
        kept for staff to read, not retried."""
        return self.path.with_suffix(".rejected.jsonl")

    def waiting(self) -> bool:
        return self.path.exists() or self._claimed.exists()

    def all(self) -> list[PendingRequest]:
        if not self.path.exists():
            return []
        rows = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rows.append(PendingRequest(**json.loads(line)))
        return rows

    async def replay(self, service: TicketService) -> list[Intake]:
        """Register the saved requests in order, each as made at its saved time and announced to the
        resident (outbox, Kind.REGISTERED). The first failure that is not the core's refusal (the database
        still away) ends the round and keeps it and the rest; a request the core refuses for good is set
        aside (`rejected`); one refused for now (the hourly limit) is kept."""
        async with self._lock:
            claimed = self._claimed
            if not claimed.exists():  # else a round that died midway: go on with what it claimed
                if not self.path.exists():
                    return []
                self.path.rename(claimed)
            requests = [
                PendingRequest(**json.loads(line))
                for line in claimed.read_text(encoding="utf-8").splitlines()
                if line.strip()
            ]
            done: list[Intake] = []
            left: list[PendingRequest] = []
            for i, request in enumerate(requests):
                try:
                    done.append(await within(functools.partial(register, service, request, replayed=True)))
                except TooManyTickets:
                    left.append(request)
                except DomainError as error:
                    log.warning("saved request refused", kind=request.kind, error=type(error).__name__)
                    self._append(self.rejected, request)
                except Exception as error:
                    log.warning(
                        "saved requests still wait", waiting=len(requests) - i, error=type(error).__name__
                    )
                    left += requests[i:]
                    break
            for request in left:
                self.add(request)
            claimed.unlink()
            if done:
                log.info("saved requests registered", registered=len(done), waiting=len(left))
            return done


async def register(service: TicketService, request: PendingRequest, *, replayed: bool = False) -> Intake:
    """Resident record, what they told us to remember, then intake (or 转人工): the one path every request
    takes, at once or replayed. A replayed one keeps the time it was saved (unless older than the domain
    backdates: then it is registered as made now) and the resident is sent its number."""
    resident_id = RUNTIME.residents.get(request.channel_id)
    if resident_id is None:
        resident_id = RUNTIME.residents[request.channel_id] = (
            await service.resident_for(request.channel_id)
        ).id
    received_at = _saved_time(request, service.clock.now()) if replayed else None
    if request.kind == "handoff":
        if request.community:
            await service.remember_resident(resident_id, community=request.community)
        return Intake(
            await service.handoff(
                resident_id,
                request.text,
                request.category or None,
                received_at=received_at,
                announce=replayed,
            )
        )
    await service.remember_resident(
        resident_id,
        phone=request.phone,
        community=request.community,
        compound=request.compound,
        consent=True,  # the notice (PRIVACY_NOTICE) named what is kept, and the resident went on
    )
    guide = service.catalogue.emergencies
    if guide is not None and request.category == guide.category:  # 紧急求助 saved while the database was down
        return await service.emergency(resident_id, request.text)
    return await service.intake(
        NewTicket(
            resident_id=resident_id,
            category=request.category,
            text=request.text,
            community=request.community,
            compound=request.compound,
            address=request.address,
            phone=request.phone,
            urgency=Urgency(request.urgency),
            intent=request.category,
            received_at=received_at,
            announce=replayed,
        )
    )


def _saved_time(request: PendingRequest, now: datetime) -> datetime | None:
    try:
        saved = datetime.fromisoformat(request.saved_at)
    except ValueError:
        return None
    if saved.utcoffset() is None or not now - MAX_BACKDATE <= saved <= now:
        return None  # registered as made now (too old, or a clock set back) rather than not at all
    return saved


def channel_id(sender_id: str | None) -> str:
    """Rasa's sender id as a channel identity: `telegram:123` stays, a bare REST sender becomes `web:…`."""
    sender = (sender_id or "anonymous").strip()[:120]
    return sender if ":" in sender else f"web:{sender}"
