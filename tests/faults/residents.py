"""Residents talking to the assistant through the web chat's relay (dashboard/chat_relay.WebRelay: every
message stored before it is relayed, kept and replayed when Rasa does not answer, the late answer waiting
for the resident's next poll), as the web chat does minus HTTP: what a resident sees is what the page
would show, including its 503 word when the database is away. Used by the fault tests to run a stream of
conversations while a fault is injected, then to check in the database that nothing was lost."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy import func, select

from app.relay import KEPT_NOTICE, STORED_NOTICE, RasaClient
from dashboard.chat_relay import Answer, WebRelay, waiting_bubbles
from tickets.channels import ChannelStore
from tickets.errors import DatabaseUnavailable
from tickets.models import InboundMessage, Notification, Ticket
from tickets.models import Resident as ResidentRow
from tickets.service import TicketService

NUMBER = re.compile(r"MH-\d{8}-\d{4,}")
PROBLEMS = [  # different requests, so no two residents' tickets are the same thing
    "小区电梯坏了三天了物业一直不管",
    "楼道的灯坏了一个多星期了晚上很黑",
    "楼上漏水把我家天花板泡坏了",
    "小区门口的路灯不亮了",
    "垃圾站好几天没人清理了很臭",
    "单元门的门禁坏了谁都能进",
    "楼下的下水道堵了污水漫出来",
    "小区里的健身器材坏了很危险",
]
# What a resident answers to each question of the request form (tests/e2e/conftest.FORM_ANSWERS; the
# address differs per resident).
FORM_ANSWERS = {
    "请核对": "确认",
    "具体说说": "已经好几天了,一直没人来处理,影响我们正常生活",
    "哪个社区": "安居社区",
    "哪个小区": "安居苑",
    "联系电话": "13912345678",
    "急不急": "不急",
}
# Said by the system when a turn could not be done now: the resident waits a little and says it again.
TRY_AGAIN = ("系统忙", "请稍后", "稍等", "暂时有点忙", "没能记下", "没有收到")
SAVED = "已经保存了您的留言"  # the request saved by the action server while the database is away
# The traces a fault leaves in what a resident sees (a short name -> words of the message).
NOTICES = {
    "503 (web chat: database away)": "系统暂时忙不过来,您的这条消息没有收到",
    "stored (Rasa unreachable)": "助手暂时联系不上",
    "kept (answer not recorded)": "系统有点忙,您的消息已经保存",
    "busy (action server down)": "系统忙,您的话已保存",
    "busy (action failed)": "暂时有点忙",
    "late answer": "(回复您 ",
    "not understood": "没太明白",
    "saved for later": SAVED,
}


@dataclass
class Resident:
    sender: str
    problem: str
    address: str
    seen: list[str] = field(default_factory=list)  # every bubble shown, in order
    told: str | None = None  # the ticket number they were told
    saved: bool = False  # told their request was saved for later (database away)
    stuck: str | None = None  # why the conversation did not end
    waits: list[float] = field(default_factory=list)  # seconds from "kept for later" to the late answer

    def shown(self, text: str) -> None:
        self.seen.append(text)

    def notices(self) -> list[str]:
        """What they saw that was not the form's usual questions: the fault's traces, by kind."""
        return [kind for said in self.seen for kind, words in NOTICES.items() if words in said]


class Residents:
    """The relay to Rasa (one address or several replicas, app/relay.RasaClient) over the ticket core."""

    def __init__(self, core: TicketService, rasa_url: str, *, replay_every: float = 1.0) -> None:
        self.core = core
        self.relay = WebRelay(RasaClient(rasa_url, timeout=60), ChannelStore(core.sessions, core.clock), core)
        self.replay_every = replay_every
        self._replaying: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Residents:
        self._replaying = asyncio.create_task(self._replay_forever())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._replaying is not None:
            self._replaying.cancel()
            await asyncio.gather(self._replaying, return_exceptions=True)
        await self.relay.rasa.close()

    async def _replay_forever(self) -> None:
        """The web app's replay loop: stored messages relayed once Rasa answers again."""
        while True:
            await asyncio.sleep(self.replay_every)
            try:
                await self.relay.replay(None)
            except Exception:  # the database away too: the next round
                continue

    async def consent(self, resident: Resident) -> None:
        """What the chat page's 同意 does (dashboard/chat.consent): the web relay keeps nothing before it."""
        who = await self.core.resident_for(resident.sender)
        await self.core.remember_resident(who.id, consent=True)

    async def say(self, resident: Resident, text: str) -> str:
        """One turn as the page shows it; late answers to earlier stored messages are polled for."""
        answer = Answer()
        try:
            await self.relay.submit(answer, resident.sender, text)
        except DatabaseUnavailable as error:  # the web chat answers 503 with this word
            resident.shown(f"[503] {error.message}")
            return resident.seen[-1]
        said = "\n".join(str(b.get("text") or "") for b in answer.bubbles)
        resident.shown(said)
        if answer.stored:  # kept for later: the page polls for the late answer
            kept = time.monotonic()
            for _ in range(120):
                await asyncio.sleep(0.5)
                late = await self._waiting(resident)
                if late:
                    said = "\n".join(late)
                    resident.shown(said)
                    resident.waits.append(time.monotonic() - kept)
                    break
        return said

    async def _waiting(self, resident: Resident) -> list[str]:
        try:
            who = await self.core.resident_for(resident.sender)
            return [str(b.get("text") or "") for b in await waiting_bubbles(self.core, who.id)]
        except Exception:
            return []

    async def converse(
        self,
        resident: Resident,
        *,
        think: float = 0.2,
        max_turns: int = 24,
        before: Callable[[Resident, str], Awaitable[None]] | None = None,
    ) -> Resident:
        """A request from the first words to a ticket number (or "saved"); `before(resident, text)` is
        awaited before each turn (a fault test's hook)."""
        text = resident.problem
        for _ in range(max_turns):
            if before is not None:
                await before(resident, text)
            said = await self.say(resident, text)
            await asyncio.sleep(think)
            if number := NUMBER.search(said):
                resident.told = number.group(0)
                return resident
            if SAVED in said:
                resident.saved = True
                return resident
            if said in (STORED_NOTICE, KEPT_NOTICE) or any(word in said for word in TRY_AGAIN):
                await asyncio.sleep(1.0)  # as asked: a moment, then the same words again
                continue
            answers = {**FORM_ANSWERS, "几栋": resident.address}
            cue = next((cue for cue in answers if cue in said), None)
            if cue is None:
                resident.stuck = f"unexpected reply to {text!r}: {said!r}"
                return resident
            text = answers[cue]
        resident.stuck = f"no end after {max_turns} turns"
        return resident


def residents(fault: str, count: int) -> list[Resident]:
    return [
        Resident(f"web:{fault}-{i}", PROBLEMS[i % len(PROBLEMS)], f"{i + 1}栋{i % 3 + 1}单元{101 + i}")
        for i in range(count)
    ]


@dataclass
class Outcome:
    """What the database holds for the residents after a fault."""

    tickets: dict[str, list[str]]  # sender -> ticket numbers
    registered: dict[str, list[str]]  # sender -> numbers announced later (outbox, Kind.REGISTERED)
    unanswered: int  # their stored messages never answered


async def outcome(core: TicketService, people: list[Resident]) -> Outcome:
    senders = [r.sender for r in people]
    async with core.sessions() as session:
        rows = await session.execute(
            select(ResidentRow.channel_id, Ticket.number)
            .join(Ticket, Ticket.resident_id == ResidentRow.id)
            .where(ResidentRow.channel_id.in_(senders))
            .order_by(Ticket.id)
        )
        notes = await session.execute(
            select(ResidentRow.channel_id, Notification.payload)
            .join(Notification, Notification.recipient_id == ResidentRow.id)
            .where(ResidentRow.channel_id.in_(senders), Notification.kind == "registered")
        )
        unanswered = await session.scalar(
            select(func.count())
            .select_from(InboundMessage)
            .where(InboundMessage.channel_id.in_(senders), InboundMessage.answered_at.is_(None))
        )
    tickets: dict[str, list[str]] = {s: [] for s in senders}
    for sender, number in rows:
        tickets[sender].append(number)
    registered: dict[str, list[str]] = {s: [] for s in senders}
    for sender, payload in notes:
        registered[sender].append(str(payload.get("number")))
    return Outcome(tickets, registered, int(unanswered or 0))


def report(fault: str, people: list[Resident], found: Outcome) -> str:
    """What each resident saw during the fault, and what the database holds."""
    told = sum(1 for r in people if r.told)
    saved = sum(1 for r in people if r.saved)
    lines = [
        f"{fault}: {len(people)} residents, {told} told a number, {saved} told 'saved', "
        f"{sum(1 for r in people if r.stuck)} stuck; tickets {sum(len(t) for t in found.tickets.values())}, "
        f"unanswered messages {found.unanswered}"
    ]
    seen = Counter(kind for r in people for kind in r.notices())
    residents_seeing = Counter(kind for r in people for kind in set(r.notices()))
    for kind, n in seen.most_common():
        lines.append(f"  {kind}: {n} times, to {residents_seeing[kind]} residents")
    for r in people:
        marks = ", ".join(r.notices())
        end = r.told or ("saved" if r.saved else f"STUCK {r.stuck}")
        waited = f"; late answers after {', '.join(f'{w:.1f}' for w in r.waits)} s" if r.waits else ""
        lines.append(
            f"  {r.sender}: {end}; tickets {found.tickets[r.sender]}{'; saw: ' + marks if marks else ''}{waited}"
        )
    return "\n".join(lines)


def check(people: list[Resident], found: Outcome) -> None:
    """Nothing lost, nothing twice: every resident told a number has exactly that ticket; one told their
    request was saved has exactly one ticket, announced to them; nobody has two; no stored message
    unanswered; no conversation stuck."""
    assert [r.sender for r in people if r.stuck] == []
    for r in people:
        if r.told:
            assert found.tickets[r.sender] == [r.told], (r.sender, r.told, found.tickets[r.sender])
        else:
            assert len(found.tickets[r.sender]) == 1 and found.registered[r.sender] == found.tickets[r.sender]
    assert found.unanswered == 0
