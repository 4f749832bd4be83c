"""`minhu bot --worker`: handles the updates the receiver recorded (bot/receiver.py, tickets/inbox.py), as many
workers as the deployment runs, each update exactly once even when a worker is killed (docs/deploy.md).

An update is handled in three steps, each safe to repeat:

1. **Claim.** The oldest pending update of a chat whose older updates are done, its row locked on a
   connection of its own (`SKIP LOCKED`): no other worker takes it, nor any later update of that chat, until
   this one is done. A worker that dies lets go with its connection.
2. **Handle.** The existing PTB handlers (`Application.process_update`) in one database transaction: every
   statement the ticket service runs while handling the update joins it (a savepoint for each of its units of
   work), together with the user's conversation state (the responders' card step, read from the database
   before and written back after: no process keeps it) and a marker that the update was handled. Killed
   before the commit: none of it happened. The Bot API calls the handlers make cannot be rolled back, so
   each is journalled (update_id, seq) before it is made and completed with Telegram's answer; handling the
   update again replays the recorded answers instead of sending again (the handlers see the same database,
   so they make the same calls).
3. **Relay and finish.** A resident's message is stored in step 2 and relayed to Rasa only after the commit,
   under a lock per sender that all processes share (app/relay.py's `hold`), then the update is marked done.
   Killed in between: the next worker finds the marker and only relays what is still stored.

   The relay journals too: Rasa's answer to a stored message (so it is asked once), and the replies Telegram
   accepted; the message is marked answered after its replies went out.

What is not exactly once: a Bot API call cut off by the worker's death is made again (it is journalled as
"about to call" first, so the next worker knows and logs `bot api call in doubt, made again`: Telegram may
or may not have had it; one HTTP call and one commit wide, as for the outbox), and a resident's message whose
worker died while Rasa was answering it is asked again (Rasa's REST channel has no idempotency key).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, cast

import structlog
from telegram import Update
from telegram.ext import ConversationHandler, ExtBot
from telegram.request import HTTPXRequest, RequestData

from app.loops import run_forever
from bot.common import App, Minhu
from bot.rasa import Relay
from tickets.inbox import MAX_ATTEMPTS, Claim, Inbox, handling_now

if TYPE_CHECKING:
    from app.relay import Reply
    from tickets.models import InboundMessage

log = structlog.get_logger("bot.worker")

IDLE = 0.2  # seconds a worker task waits when no update is free
HOUSEKEEPING_EVERY = 10.0  # seconds between replays of stored messages (and, hourly, prunings)
PRUNE_EVERY = 360  # housekeeping rounds


class JournalRequest(HTTPXRequest):
    """The worker's Bot API requests: while an update is handled (or a stored message answered), each call
    is journalled before it is made and completed with Telegram's answer; a call the journal has answered
    (the update is handled again) is answered from it, not sent."""

    def __init__(self, inbox: Inbox, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.inbox = inbox

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = HTTPXRequest.DEFAULT_NONE,
        write_timeout: Any = HTTPXRequest.DEFAULT_NONE,
        connect_timeout: Any = HTTPXRequest.DEFAULT_NONE,
        pool_timeout: Any = HTTPXRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        handling = handling_now()
        call = url.rsplit("/", 1)[-1]

        async def send() -> tuple[int, bytes]:
            return await super(JournalRequest, self).do_request(
                url, method, request_data, read_timeout, write_timeout, connect_timeout, pool_timeout
            )

        if handling is None:
            return await send()
        if handling.replaying:
            known = await self.inbox.recorded_call(handling.update_id, handling.seq)
            if known is not None and known.method == call and known.status:
                handling.seq += 1
                log.info("bot api call replayed", update_id=handling.update_id, method=call)
                return known.status, known.response.encode()
            if known is not None and known.method == call:  # a worker died during this very call
                log.warning("bot api call in doubt, made again", update_id=handling.update_id, method=call)
            elif known is not None:
                log.warning("handling took another path", update_id=handling.update_id, method=call)
                handling.journaling = False
            handling.replaying = False
        if not handling.journaling:
            return await send()
        await self.inbox.record_call(handling.update_id, handling.seq, call, 0, "")
        status, body = await send()
        if 200 <= status < 300:
            await self.inbox.record_call(handling.update_id, handling.seq, call, status, body.decode())
            handling.seq += 1
        else:  # refused (429, 5xx: PTB may try again, under the same number)
            await self.inbox.forget_call(handling.update_id, handling.seq)
        return status, body


class InboxRelay(Relay):
    """In a worker: a resident's message is stored in the update's transaction and relayed after it commits;
    one sender's stored messages are relayed by one process at a time (a PostgreSQL advisory lock)."""

    def __init__(self, relay: Relay, inbox: Inbox) -> None:
        super().__init__(relay.rasa, relay.store, relay.tz, notice_after=relay.notice_after)
        self.inbox = inbox

    def hold(self, sender: str) -> AbstractAsyncContextManager[Any]:
        return self.inbox.sender_lock(sender)

    # As the ordered relay does, but Rasa's answer and the replies Telegram accepted are journalled (key: -message
    # id), and a message is marked answered only after its replies went out: relaying it again after a worker
    # died asks Rasa again only if its answer was not kept, and sends only what Telegram had not accepted.
    async def _replies(
        self, target: ExtBot[Any], sender: str, message: InboundMessage, is_fresh: bool
    ) -> tuple[list[Reply], bool]:
        kept = await self.inbox.recorded_call(-message.id, 0)
        if kept is not None:
            return json.loads(kept.response), False
        replies = await self._ask(target, sender, message, is_fresh)
        await self.inbox.record_call(-message.id, 0, "rasa", 200, json.dumps(replies, ensure_ascii=False))
        return replies, not is_fresh

    async def _deliver(
        self, target: ExtBot[Any], sender: str, message: InboundMessage, replies: list[Reply], *, late: bool
    ) -> None:
        async with self.inbox.journal(-message.id, first_seq=1):
            await self.answer(target, sender, message, replies, late=late)
        await self.store.mark_answered(message.id)

    async def submit(self, target: ExtBot[Any], sender: str, text: str) -> None:
        handling = handling_now()
        if handling is None:
            await super().submit(target, sender, text)
            return
        message = await self.store.store_message(sender, text)
        handling.to_relay.append((sender, message.id))


def card_conversation(application: App) -> ConversationHandler[Any]:
    for handlers in application.handlers.values():
        for handler in handlers:
            if isinstance(handler, ConversationHandler):
                return handler
    raise LookupError("no ConversationHandler registered")


class ChatStates:
    """A user's conversation state moved between the database and PTB around one update: the card
    conversation's step (ConversationHandler keeps it in `_conversations`, keyed (chat, user); PTB reads
    persistence only at start-up, so it is set here per update) and the user's `user_data`. Nothing stays
    in the process after the update."""

    def __init__(self, application: App) -> None:
        self.application = application
        self.conversation = card_conversation(application)

    @staticmethod
    def key(update: Update) -> tuple[int, int] | None:
        if update.effective_chat is None or update.effective_user is None:
            return None
        return update.effective_chat.id, update.effective_user.id

    def _steps(self) -> dict[tuple[int, int], object]:
        return cast(dict[tuple[int, int], object], self.conversation._conversations)

    def restore(self, key: tuple[int, int], state: dict[str, Any]) -> None:
        steps = self._steps()
        steps.pop(key, None)
        if state.get("step") is not None:
            steps[key] = state["step"]
        user_data = self.application.user_data[key[1]]
        user_data.clear()
        user_data.update(state.get("user_data") or {})

    def take(self, key: tuple[int, int]) -> dict[str, Any]:
        step = self._steps().pop(key, None)
        user_data = dict(self.application.user_data.get(key[1]) or {})
        self.application.drop_user_data(key[1])
        state: dict[str, Any] = {}
        if step is not None:
            state["step"] = step
        if user_data:
            state["user_data"] = user_data
        return state


class Worker:
    """Handles recorded updates with `concurrency` tasks; see the module's docstring."""

    def __init__(self, application: App, inbox: Inbox, *, concurrency: int = 8) -> None:
        self.application, self.inbox = application, inbox
        self.concurrency = concurrency
        self.states = ChatStates(application)
        minhu = cast(Minhu, application.bot_data["minhu"])
        relay = minhu.relay if isinstance(minhu.relay, InboxRelay) else InboxRelay(minhu.relay, inbox)
        minhu.relay = self.relay = relay
        self.minhu = minhu

    async def handle_one(self) -> bool:
        """Claim, handle, relay and finish one update; False when none was free."""
        async with self.inbox.claim_next() as claim:
            if claim is None:
                return False
            if claim.attempts >= MAX_ATTEMPTS:
                log.error("update given up", update_id=claim.update_id, attempts=claim.attempts)
                await self.inbox.done(claim)
                return True
            try:
                relays: list[tuple[str, int | None]]
                if claim.handled is not None:
                    relays = [(sender, None) for sender in claim.handled.senders.split()]
                    log.info("update handled before; relaying", update_id=claim.update_id)
                else:
                    relays = await self._handle(claim)
                for sender, fresh in relays:
                    await self.relay.relay_stored(self.application.bot, sender, fresh)
                await self.inbox.done(claim)
            except Exception as error:
                log.error("update failed", update_id=claim.update_id, error=type(error).__name__)
                await claim.failed()
            return True

    async def _handle(self, claim: Claim) -> list[tuple[str, int | None]]:
        async with self.inbox.handling(claim.update_id) as handling:
            update = Update.de_json(json.loads(claim.payload), self.application.bot)
            key = self.states.key(update)
            if key is not None:
                self.states.restore(key, await self.inbox.state_of(handling, key[1]))
            await self.application.process_update(update)
            state = self.states.take(key) if key is not None else {}
            senders = list(dict.fromkeys(sender for sender, _ in handling.to_relay))
            await self.inbox.handled(handling, key[1] if key else None, state, senders)
        return [(sender, fresh) for sender, fresh in handling.to_relay]

    async def drain(self) -> int:
        """Handle until nothing is free (tests); returns how many were handled."""
        handled = 0
        while await self.handle_one():
            handled += 1
        return handled

    async def _task(self) -> None:
        while True:
            try:
                if not await self.handle_one():
                    await asyncio.sleep(IDLE)
            except Exception as error:  # the database away: try again shortly
                log.error("worker round failed", error=type(error).__name__)
                await asyncio.sleep(1.0)

    async def _housekeeping(self) -> None:
        rounds = 0

        async def one() -> None:
            nonlocal rounds
            await self.relay.replay(self.application.bot)
            if rounds % PRUNE_EVERY == 0:
                await self.minhu.store.prune()
                await self.inbox.prune()
            rounds += 1

        await run_forever(one, HOUSEKEEPING_EVERY, name="worker housekeeping")

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(self._task()) for _ in range(self.concurrency)]
        tasks.append(asyncio.create_task(self._housekeeping()))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
