"""The web chat's plumbing: who the resident is (a `web:<random id>` sender in an encrypted cookie of its
own), the relay to the assistant (app/relay.py, the same ordered, stored relay as Telegram's) and how its
answers and the outbox's notifications become the page's chat bubbles, and per-client rate limits.

The identity cookie is separate from the dashboard's session cookie: it must outlive a 12-hour staff
session (a resident comes back days later for the 回访), and it is encrypted and authenticated with a key
of its own derived from the dashboard secret, so neither cookie can stand for the other. A cookie that
does not decrypt, is too old, or holds anything but a well-formed web sender is ignored: the visitor is a
new anonymous one, never somebody else.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from app.notices import rated_heading, resident_text
from app.relay import KEPT_NOTICE, STORED_NOTICE, RasaClient, Relay, Reply, late_heading
from dashboard.auth import LoginLimiter
from dashboard.clients import client_address
from dashboard.cookies import SealedCookie
from tickets import outbox
from tickets.channels import ChannelStore
from tickets.models import InboundMessage
from tickets.outbox import Channel, Claimed, Kind, Recipient
from tickets.service import TicketService

COOKIE = "minhu_chat"
COOKIE_DAYS = 180  # renewed on every visit: a resident who keeps coming back stays the same resident
SENDER_RE = re.compile(r"web:[A-Za-z0-9_-]{22}")
CUSTOM_NOTICE = "这部分内容暂时无法在网页上显示。如需帮助,请说“转人工”。"
MAX_MESSAGE = 2000  # what Rasa's REST channel keeps (nlu/channels.py MAX_TEXT)
MAX_BUTTONS = 12


def new_sender() -> str:
    return f"{Channel.WEB}:{secrets.token_urlsafe(16)}"


class Identity(SealedCookie):
    """The `minhu_chat` cookie: the resident's sender (web:<random id>)."""

    def __init__(self, secret: bytes, *, secure: bool = False) -> None:
        super().__init__(
            secret,
            name=COOKIE,
            purpose=b"minhu web chat identity",
            pattern=SENDER_RE,
            days=COOKIE_DAYS,
            secure=secure,
        )

    def sender(self, request: web.Request) -> str | None:
        return self.read(request)


def bubble(
    text: str, buttons: list[dict[str, str]] | None = None, *, link: str | None = None
) -> dict[str, Any]:
    """One chat bubble as the page's script shows it (as text: never as HTML)."""
    item: dict[str, Any] = {"text": text, "buttons": buttons or []}
    if link:
        item["link"] = link
    return item


def bubbles_of(replies: list[Reply]) -> list[dict[str, Any]]:
    """Rasa's replies as bubbles: text, buttons (title and the payload they send back), an image as a link
    to open (no remote image is loaded into the page), a custom payload told as not shown."""
    out = []
    for reply in replies:
        text = str(reply.get("text") or "").strip()
        buttons = [
            {
                "title": str(b.get("title") or b.get("payload") or "")[:60],
                "payload": str(b.get("payload") or b.get("title") or "")[:MAX_MESSAGE],
            }
            for b in (reply.get("buttons") or [])[:MAX_BUTTONS]
            if isinstance(b, dict)
        ]
        if text or buttons:
            out.append(bubble(text or "请选择:", buttons))
        image = reply.get("image")
        if isinstance(image, str) and image.startswith(("https://", "http://")):
            out.append(bubble("图片", link=image))
        if reply.get("custom") is not None:
            out.append(bubble(CUSTOM_NOTICE))
    return out


def notification_bubbles(note: Claimed) -> list[dict[str, Any]]:
    """A notification that waited for the resident, as bubbles (the same words as on Telegram)."""
    number, payload = note.number, note.payload
    if note.kind is Kind.ASSISTANT:
        heading = str(payload.get("heading") or "")
        replies = [r for r in payload.get("replies") or [] if isinstance(r, dict)]
        return [bubble(heading), *bubbles_of(replies)] if heading else bubbles_of(replies)
    if note.kind is Kind.RATE:
        return [bubble(rated_heading(number, payload), link=f"/chat/tickets#t-{number}")]
    text = resident_text(note.kind, number, payload)
    return [bubble(text)] if text else []


@dataclass
class Answer:
    """What the page is told in answer to one message: the bubbles, and whether it was stored for later."""

    bubbles: list[dict[str, Any]] = field(default_factory=list)
    stored: bool = False


class WebRelay(Relay["Answer | None"]):
    """The web chat's relay. With an Answer (the page is waiting on its POST) the replies go into it; with
    None (the replay loop, the page may be closed) they are kept in the outbox for the resident (Kind.
    ASSISTANT) and shown on the page's next poll or visit."""

    channel = Channel.WEB

    def __init__(self, rasa: RasaClient, store: ChannelStore, service: TicketService, **kwargs: Any) -> None:
        super().__init__(rasa, store, service.calendar.tz, **kwargs)
        self.service = service

    async def notice(self, target: Answer | None, sender: str, text: str) -> None:
        if target is None:
            return
        if text in (STORED_NOTICE, KEPT_NOTICE):  # kept for later: the page waits for the late answer
            target.stored = True
            target.bubbles.append(bubble(text))
        # The wait notice: the page shows its own "正在处理" while the POST is open.

    async def answer(
        self, target: Answer | None, sender: str, message: InboundMessage, replies: list[Reply], *, late: bool
    ) -> None:
        heading = late_heading(message, self.tz) if late else ""
        if target is not None:
            if heading:
                target.bubbles.append(bubble(heading))
            target.bubbles.extend(bubbles_of(replies))
            return
        await self.keep_for_later(sender, replies, heading)

    async def keep_for_later(self, sender: str, replies: list[Reply], heading: str = "") -> None:
        resident = await self.service.resident_for(sender)
        await self.store.hold_for_resident(
            Kind.ASSISTANT, resident.id, {"heading": heading, "replies": replies[:20]}
        )


async def waiting_bubbles(service: TicketService, resident_id: int) -> list[dict[str, Any]]:
    """What waited for the resident (their notifications), as bubbles; marked delivered as it is taken."""
    notes = await outbox.take_for_resident(service.sessions, resident_id, service.clock.now(), ref="web")
    return [
        b for note in notes if note.recipient_type is Recipient.RESIDENT for b in notification_bubbles(note)
    ]


class News:
    """The residents whose chat pages are open here (their streams, /chat/live) and one poller that asks,
    while any is open, which of them have something waiting (ChannelStore.residents_with_news): one read a
    round for all the pages, instead of each page asking /chat/updates every few seconds. A resident's
    streams are woken to take it (`waiting_bubbles`); what one of them took is gone for the next round."""

    def __init__(self, store: ChannelStore) -> None:
        self.store = store
        self.listeners: defaultdict[int, set[asyncio.Event]] = defaultdict(set)
        self.closing = False

    @contextlib.contextmanager
    def listening(self, resident_id: int) -> Iterator[asyncio.Event]:
        """An event set when the resident may have something waiting; set at first: what waited already."""
        woken = asyncio.Event()
        woken.set()
        self.listeners[resident_id].add(woken)
        try:
            yield woken
        finally:
            self.listeners[resident_id].discard(woken)
            if not self.listeners[resident_id]:
                del self.listeners[resident_id]

    def stop(self) -> None:
        """The server is stopping: every stream is woken to end (it sees `closing`), not waited for."""
        self.closing = True
        for events in self.listeners.values():
            for woken in events:
                woken.set()

    async def poll(self) -> None:
        if not self.listeners:
            return
        for resident_id in await self.store.residents_with_news(list(self.listeners)):
            for woken in self.listeners.get(resident_id, ()):
                woken.set()


class Limits:
    """Per-client sliding windows (the login limiter's): each client (its sender, or its address before it
    has one) and each address, so a visitor who keeps dropping the cookie is still limited."""

    def __init__(self, per_client: int, per_address: int, window: float = 60.0) -> None:
        self.client = LoginLimiter(per_client, window)
        self.address = LoginLimiter(per_address, window)

    def allow(self, request: web.Request, sender: str | None) -> bool:
        address = client_address(request)
        return self.address.allow(address) and self.client.allow(sender or f"addr:{address}")


@dataclass
class ChatConfig:
    """What the web chat needs beside the dashboard: the assistant's address and where photos are kept."""

    rasa_url: str
    photo_dir: Path
    rasa_timeout: float = 60.0
    replay_every: float = 5.0
    news_every: float = 1.0  # the open pages' poller (News): the most a late answer waits to be shown
    messages_per_minute: int = 20
    posts_per_minute_per_address: int = 120
    photos_per_minute: int = 5
    consents_per_minute: int = 10  # per address: new residents (a family behind one router is a few)
