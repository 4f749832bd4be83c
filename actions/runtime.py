"""What the actions need at run time: the ticket service (opened from the settings on first use, or set
by tests), the guide, the pending-request store, and a time limit for every call into the core."""

from __future__ import annotations

import asyncio
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

from minhu.settings import Settings, get_settings
from minhu.wiring import open_service
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


class Runtime:
    def __init__(self) -> None:
        self._service: TicketService | None = None
        self._stack: AsyncExitStack | None = None
        self._lock: asyncio.Lock | None = None
        self._guide: Guide | None = None
        self._pending: PendingStore | None = None
        self.residents: dict[str, int] = {}  # channel id -> resident id (ids never change)
        self._tasks: set[asyncio.Task[object]] = set()
        self._org_data: dict[str, tuple[float, Any]] = {}
        self.monotonic: Callable[[], float] = time.monotonic  # tests move it on

    async def org_data(self, key: str, read: Callable[[], Awaitable[T]]) -> T:
        """`read()`'s result, kept for ORG_DATA_TTL_S (see there)."""
        held = self._org_data.get(key)
        if held is not None and self.monotonic() < held[0]:
            return held[1]  # type: ignore[no-any-return]
        value = await within(read)
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
        self._service = service
        self._pending = pending
        self.residents.clear()
        self._org_data.clear()

    async def service(self) -> TicketService:
        if self._service is None:
            if self._lock is None:
                self._lock = asyncio.Lock()
            async with self._lock:
                if self._service is None:
                    self._stack = AsyncExitStack()
                    self._service = await self._stack.enter_async_context(open_service(get_settings()))
                    log.info("action server connected", database=get_settings().db_url.split("@")[-1])
        return self._service

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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(asdict(request), ensure_ascii=False) + "\n"
        with self.path.open("a", encoding="utf-8") as file:
            file.write(line)
            file.flush()
            os.fsync(file.fileno())

    def all(self) -> list[PendingRequest]:
        if not self.path.exists():
            return []
        rows = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rows.append(PendingRequest(**json.loads(line)))
        return rows

    async def replay(self, service: TicketService) -> list[Intake]:
        """Register every saved request; the ones that still fail stay in the file."""
        if not self.path.exists():
            return []
        async with self._lock:
            claimed = self.path.with_suffix(".replaying")
            if not claimed.exists():
                self.path.rename(claimed)
            done: list[Intake] = []
            left: list[PendingRequest] = []
            for line in claimed.read_text(encoding="utf-8").splitlines():
                if not line.strip():
                    continue
                request = PendingRequest(**json.loads(line))
                try:
                    done.append(await register(service, request))
                except Exception as error:  # still failing: keep it
                    log.warning("pending request still failing", error=type(error).__name__)
                    left.append(request)
            for request in left:
                self.add(request)
            claimed.unlink()
            return done


async def register(service: TicketService, request: PendingRequest) -> Intake:
    """Resident record, what they told us to remember, then intake: the one path every request takes."""
    resident_id = RUNTIME.residents.get(request.channel_id)
    if resident_id is None:
        resident_id = RUNTIME.residents[request.channel_id] = (
            await service.resident_for(request.channel_id)
        ).id
    await service.remember_resident(
        resident_id,
        phone=request.phone,
        community=request.community,
        compound=request.compound,
        consent=True,  # the notice says: phone and community only (the address stays on the ticket)
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
        )
    )


def channel_id(sender_id: str | None) -> str:
    """Rasa's sender id as a channel identity: `telegram:123` stays, a bare REST sender becomes `web:…`."""
    sender = (sender_id or "anonymous").strip()[:120]
    return sender if ":" in sender else f"web:{sender}"
