"""Relaying residents' messages to the assistant (Rasa's REST channel), shared by every chat edge (Telegram in
bot/rasa.py, the web chat in dashboard/chat.py): each edge says only how a reply reaches its residents.

Every message is stored before it is relayed and marked answered once Rasa has answered it, so when Rasa is
down nothing is lost: the resident is told it will be handled, and stored messages are replayed in order
when Rasa is back. A slow answer is waited for, never asked twice. Each message goes to Rasa with its own
id (`message_key`): a message sent again because its answer could not be kept (Rasa, Redis or this
database failed after the turn was taken) is answered from the conversation's record, not taken as the
resident's next words (nlu/channels.py). Once a message is stored, a failure is never told to the resident as
"not received": they would say it again, and the conversation would take it twice. One resident's messages go one at a time,
in order; different residents do not wait for each other. A channel replays only its own residents' stored
messages (`Relay.channel`): another channel's reply could not reach them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import os
from collections import defaultdict
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import aiohttp
import structlog

from app.health import note_relay_error
from tickets.channels import ChannelStore
from tickets.db import retry_if_dropped
from tickets.errors import DatabaseUnavailable
from tickets.models import InboundMessage

log = structlog.get_logger("app.relay")

# Both end with the emergency numbers: the assistant's life-safety reply cannot be given while it is away.
EMERGENCY_LINE = "情况紧急请直接拨打 110 / 119 / 120。"
STORED_NOTICE = "助手暂时联系不上,您的消息已经保存,恢复后会按顺序处理并回复您,不用重复发送。" + EMERGENCY_LINE
# Rasa answered, but the answer could not be recorded: it comes with the stored replay.
KEPT_NOTICE = "系统有点忙,您的消息已经保存,稍后会按顺序回复您,不用重复发送。" + EMERGENCY_LINE
WAIT_NOTICE = "收到,正在为您处理,请稍候……"
# Rasa's REST channel (nlu/channels.py) keeps a `telegram:`/`web:` sender only from a relay sending this
# header with the secret `minhu run` generates (minhu/stack.py); others are answered as `rest:<sender>`.
RELAY_HEADER = "X-Minhu-Relay"
RELAY_SECRET_ENV = "MINHU_RELAY_SECRET"
# Names the conversation to the deployment's entry (docker/nginx.conf hashes it), so one sender's turns go to
# one Rasa replica: Rasa Open Source's Redis lock is not atomic (RasaHQ/rasa#9213), two replicas could take
# one conversation's turns at once. Rasa itself ignores it.
SENDER_HEADER = "X-Minhu-Sender"

Reply = dict[str, Any]  # one item of Rasa's REST answer: text, buttons, image, custom
T = TypeVar("T")


def relay_headers(sender: str | None = None) -> dict[str, str]:
    """The header that proves to Rasa's REST channel that this is a relay (none if no secret is set), and the
    sender's name for the entry's hash (percent-encoded: a header carries ASCII only)."""
    secret = os.environ.get(RELAY_SECRET_ENV, "")
    headers = {RELAY_HEADER: secret} if secret else {}
    if sender is not None:
        headers[SENDER_HEADER] = quote(sender, safe=":")
    return headers


class RasaUnavailable(Exception):
    """Rasa did not answer (down, refused, failed or too slow)."""


def rasa_urls(url: str) -> list[str]:
    """The Rasa replicas in MINHU_RASA_URL: one address, or several separated by commas."""
    return [part.strip().rstrip("/") for part in url.split(",") if part.strip()]


def replicas_for(sender: str, urls: list[str]) -> list[str]:
    """The order in which `sender`'s turns try the replicas: rendezvous hashing, so one sender goes to one
    replica while it answers (Rasa Open Source's Redis lock is not atomic, RasaHQ/rasa#9213), and a replica
    going away moves only its own senders, each to the same next one."""
    return sorted(urls, key=lambda url: hashlib.sha256(f"{url} {sender}".encode()).digest(), reverse=True)


class RasaClient:
    """Rasa's REST channel at one address, or at several replicas (`url` "http://a:5005,http://b:5005", for a
    deployment without a load balancer in front of them): a sender's turns go to its replica
    (`replicas_for`), and to the next one only when the connection is refused, i.e. when nothing was sent. A
    turn sent and not answered (the replica died under it, or timed out) is never sent again here: the relay
    keeps it and replays it (Relay), as with one Rasa."""

    def __init__(self, url: str, *, timeout: float = 60.0) -> None:
        self.urls = rasa_urls(url)
        self.url = self.urls[0] if self.urls else url.rstrip("/")
        self.timeout = timeout
        self._http: aiohttp.ClientSession | None = None

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            # With several replicas, a connection per turn: a kept-alive one to a replica that has just died
            # fails as a reset, when whether the turn was sent is unknown, and the sender could not move on; a
            # refused new connection says that nothing was sent. (A connect costs well under 1 ms here.)
            connector = aiohttp.TCPConnector(force_close=len(self.urls) > 1)
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout), connector=connector
            )
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def send(self, sender: str, message: str, message_id: str | None = None) -> list[Reply]:
        """Rasa's replies to one message; `message_id` (the relay's `message_key`) makes a repeat of the same
        message answered from the conversation's record (nlu/channels.py)."""
        replicas = replicas_for(sender, self.urls) if len(self.urls) > 1 else [self.url]
        payload = {"sender": sender, "message": message}
        if message_id is not None:
            payload["message_id"] = message_id
        try:
            for i, url in enumerate(replicas):
                try:
                    body = await self._post(url, sender, payload)
                except aiohttp.ClientConnectorError as error:  # refused: nothing sent, the next one may
                    if i == len(replicas) - 1:
                        raise
                    note_relay_error(f"{type(error).__name__} (failed over)")
                    continue
                break
        except RasaUnavailable as error:
            note_relay_error(str(error))  # the process's /metrics (minhu_relay_errors)
            raise
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            note_relay_error(type(error).__name__)
            raise RasaUnavailable(type(error).__name__) from error
        return [item for item in body if isinstance(item, dict)] if isinstance(body, list) else []

    async def _post(self, url: str, sender: str, payload: dict[str, str]) -> Any:
        async with self.http.post(
            f"{url}/webhooks/rest/webhook",
            json=payload,
            headers=relay_headers(sender),
        ) as response:
            if response.status != 200:
                raise RasaUnavailable(f"HTTP {response.status}")
            return await response.json(content_type=None)

    async def reachable(self) -> bool:
        """True when a replica answers."""
        for url in self.urls or [self.url]:
            try:
                async with self.http.get(url, timeout=aiohttp.ClientTimeout(total=5)) as response:
                    if response.status == 200:
                        return True
            except (aiohttp.ClientError, TimeoutError):
                continue
        return False


def message_key(message: InboundMessage) -> str:
    """The stored message's name for Rasa: its row and when it came (so a database begun again, whose ids
    start over, does not name an old message of the same sender)."""
    return f"{message.id}.{message.received_at.astimezone(UTC):%Y%m%d%H%M%S%f}"


def late_heading(message: InboundMessage, tz: Any) -> str:
    """Said before the answer to a message that waited (Rasa was away): which message it answers."""
    when = message.received_at.astimezone(tz).strftime("%H:%M")
    return f"(回复您 {when} 的留言:“{message.text[:30]}”)"


class Relay(Generic[T]):
    """The ordered, stored relay. `T` is where a channel's replies go (Telegram: the bot; the web: the
    page's answer, or None for "keep it until the resident comes back"). A channel implements `notice`
    (a short word to the resident) and `answer` (Rasa's replies to one message; `late`: to an older
    stored message, not the one just sent)."""

    channel = ""

    def __init__(self, rasa: RasaClient, store: ChannelStore, tz: Any, *, notice_after: float = 8.0) -> None:
        self.rasa, self.store, self.tz = rasa, store, tz
        self.notice_after = notice_after
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def notice(self, target: T, sender: str, text: str) -> None:
        raise NotImplementedError

    async def answer(
        self, target: T, sender: str, message: InboundMessage, replies: list[Reply], *, late: bool
    ) -> None:
        raise NotImplementedError

    def hold(self, sender: str) -> AbstractAsyncContextManager[Any]:
        """Held while one sender's stored messages are relayed, so they go one at a time: a lock of this
        process (bot/worker.py holds one that all the bot's processes share)."""
        return self._locks[sender]

    async def submit(self, target: T, sender: str, text: str) -> None:
        """A resident's message (or button payload): stored, then relayed after any older stored ones."""
        async with self.hold(sender):
            # Each statement tried once more on a fresh connection after a database restart (not the call
            # to Rasa: a message is never sent twice for it).
            fresh, pending = await retry_if_dropped(lambda: self.store.receive(sender, text))
            await self._drain(target, sender, fresh.id, pending)

    async def replay(self, target: T) -> int:
        """Relay this channel's stored messages, oldest sender first; stops at the first sign Rasa is still
        away. Returns how many were answered."""
        answered = 0
        for sender in await self.store.waiting_senders(channel=self.channel or None):
            async with self.hold(sender):
                done = await self._drain(target, sender, None)
            answered += done
            if done == 0:
                break
        return answered

    async def relay_stored(self, target: T, sender: str, fresh_id: int | None) -> int:
        """Relay the sender's stored messages (`fresh_id`: the one just sent, as `submit` would)."""
        async with self.hold(sender):
            return await self._drain(target, sender, fresh_id)

    async def _drain(
        self, target: T, sender: str, fresh_id: int | None, pending: Sequence[InboundMessage] | None = None
    ) -> int:
        """Relay the sender's unanswered messages in order (`pending`, when the caller has just read them)."""
        answered = 0
        if pending is None:
            pending = await retry_if_dropped(lambda: self.store.pending_messages(sender))
        for message in pending:
            try:
                replies, late = await self._replies(target, sender, message, message.id == fresh_id)
            except RasaUnavailable as error:
                log.warning("rasa unavailable", reason=str(error), message_id=message.id)
                with contextlib.suppress(DatabaseUnavailable):  # only a count: the message is stored
                    await retry_if_dropped(functools.partial(self.store.count_attempt, message.id))
                if fresh_id is not None:
                    await self.notice(target, sender, STORED_NOTICE)
                return answered
            except DatabaseUnavailable:  # after the message was stored: it stays, for the replay
                log.warning("database unavailable while relaying", message_id=message.id)
                if fresh_id is not None:
                    await self.notice(target, sender, KEPT_NOTICE)
                return answered
            try:
                await self._deliver(target, sender, message, replies, late=late)
            except DatabaseUnavailable:  # Rasa took it, the answer is not recorded: the replay brings it
                log.warning("answer not recorded: the database is unavailable", message_id=message.id)
                if fresh_id is not None:
                    await self.notice(target, sender, KEPT_NOTICE)
                return answered
            answered += 1
        return answered

    async def _replies(
        self, target: T, sender: str, message: InboundMessage, is_fresh: bool
    ) -> tuple[list[Reply], bool]:
        """Rasa's answer to a stored message, and whether it comes late (not to the message just sent)."""
        return await self._ask(target, sender, message, is_fresh), not is_fresh

    async def _deliver(
        self, target: T, sender: str, message: InboundMessage, replies: list[Reply], *, late: bool
    ) -> None:
        # Marked before replying: never answered twice.
        await retry_if_dropped(lambda: self.store.mark_answered(message.id))
        await self.answer(target, sender, message, replies, late=late)

    async def _ask(self, target: T, sender: str, message: InboundMessage, is_fresh: bool) -> list[Reply]:
        task = asyncio.create_task(self.rasa.send(sender, message.text, message_key(message)))
        done, _ = await asyncio.wait({task}, timeout=self.notice_after)
        if not done and is_fresh:
            with contextlib.suppress(Exception):
                await self.notice(target, sender, WAIT_NOTICE)
        return await task
