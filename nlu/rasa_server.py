"""`python -m nlu.rasa_server run …`: the `rasa` command, with fixes to Rasa 3.6's per-message hot path.

Measured on this project's request form (py-spy and cProfile of the Rasa server, see benchmarks/README.md),
Rasa spent much of its CPU per message on work whose result never changes:

* `jsonschema.validate(result, schema)` on every action-server response first re-checks the large, constant
  events schema itself (~60 % of the CPU per message before this module existed), and then tries each
  event against all 23 branches of the schema's `oneOf`. Here each event is checked against the one branch
  its `event` name selects (the branches differ by a `const` event name, so no other branch can match);
  anything that does not pass goes through Rasa's own check, which rejects it with Rasa's message.
* `Event.resolve_by_type` walks every subclass of `Event` (recursively, with `inspect.isabstract`) for
  each event it deserialises: every tracker read from the tracker store and every action response.
  Here the name → class map is built once; an unknown name still takes Rasa's own path.
* A custom action that fails (the action server down or timing out) left the resident with no answer at
  all: here they are told the system is busy and their words are kept, and a form does not keep the answer
  its validation never saw (`_answer_when_actions_fail`).
* A relay sends a message again when it got no answer it could keep (tests/faults found it: Redis failing
  as Rasa let go of a conversation's lock, after the turn was saved, made a 500; the relay's database
  failing as it marked the answer); Rasa took the repeated answer as the form's next one and the form went
  off track. Here a relayed message (named by the relay, nlu/channels.py) that the conversation already
  holds is answered with what was said to it then (`_answer_each_relayed_message_once`).
* Rasa's server gets /healthz, /readyz and /metrics (nlu/health.py), as every Minhu process has.
* While the conversation store (the SQL tracker store, in the app's database) is away, Rasa saved each
  conversation to memory but read it back only from the store: every message started a new conversation, so
  a form's answer was taken out of the blue (“没太明白”). Here conversations are kept in memory until the
  store is back, then written to it (`_keep_conversations_while_the_store_is_away`). A conversation this
  process has seen in the store is not begun again from nothing meanwhile (its form would go off track): its
  message is answered 503, and the relay keeps it and sends it again once the store is back.

Not patched: Rasa's new aiohttp session (and TCP connection) per action call. A third patch kept one session
per endpoint; measured alone (issue 11; benchmarks/README.md, "Third round", every run and the commands), it
saves ~0.4 ms of Rasa's CPU and ~0.2 ms of the action server's per call on loopback (1.7 calls a message),
~3 % of the stack's ~34 ms of CPU a message. Interleaved `chat_latency.py` runs, 20 residents, with / without
it (means; ± is the standard deviation of the pairwise differences): back-to-back, 12 pairs, Rasa CPU 27.8 /
28.4 ms a message (+0.6 ± 2.3), action server 5.7 / 6.0 ms (+0.3 ± 0.7), 18.6 / 17.7 msg/s (-1.0 ± 4.2);
3 s think, 4 pairs, p95 median 176 / 178 ms, Rasa 26.8 / 27.2 ms, action server 5.0 / 5.8 ms. Within the
noise of this shared machine, so it went: it did not pay for long-lived sessions that must be keyed by the
whole endpoint configuration and closed at shutdown. Re-measure it if the action server leaves loopback or
sits behind TLS, where a connection costs more.

Apart from that last point, what Rasa accepts, rejects or returns is unchanged. Runs in the Rasa venv (imports nothing from the app);
the pinned Rasa version is asserted so an upgrade re-examines the patches.
"""

from __future__ import annotations

import sys
from typing import Any

from nlu import health

RASA_VERSION = "3.6.21"
KNOWN_CONVERSATIONS = 100_000  # senders remembered as being in the conversation store (~100 bytes each)


def install() -> None:
    import rasa

    if rasa.__version__ != RASA_VERSION:
        raise RuntimeError(f"nlu/rasa_server.py patches Rasa {RASA_VERSION}, found {rasa.__version__}")
    _validate_action_responses_once()
    _resolve_event_types_once()
    health.time_remote_actions()  # first: the answer for a failed action (next) hides the failure
    _answer_when_actions_fail()
    _keep_conversations_while_the_store_is_away()
    _answer_each_relayed_message_once()
    _serve_health()


def _serve_health() -> None:
    """/healthz, /readyz and /metrics on Rasa's own server (nlu/health.py), added to the app `rasa run`
    builds."""
    import rasa.core.run

    configure_app = rasa.core.run.configure_app

    def configure_app_with_health(*args: Any, **kwargs: Any) -> Any:
        app = configure_app(*args, **kwargs)
        health.attach(app)
        return app

    rasa.core.run.configure_app = configure_app_with_health


# Said when the action server cannot be reached or fails: never silence. What the resident wrote stays in
# the conversation (the SQL tracker store), so nothing they said is lost.
ACTIONS_DOWN = (
    "系统忙,您的话已保存。请稍等一两分钟再说一次,我们会接着为您办理;情况紧急请直接拨打 110 / 119 / 120。"
)


def _answer_when_actions_fail() -> None:
    """Rasa 3.6 logs a failed custom action and carries on with no reply at all; a form then keeps the
    answer its validation never saw (the address slot became 确认). Here the resident is told the system is
    busy, and a failed form validation clears the slot it was asked about, so the question is asked again.
    An action that fails just after a form ended (the form's submit: the action server died while it
    registered the request) opens the form again at its last question, so the resident's repeated answer
    submits it again (found by tests/faults: the request was lost). A submit that had been stored before the
    failure is then the ticket core's duplicate, answered with its number, never a second ticket."""
    import logging

    from rasa.core.actions.action import ActionExecutionRejection, RemoteAction
    from rasa.shared.core.constants import REQUESTED_SLOT
    from rasa.shared.core.events import ActionExecuted, ActiveLoop, BotUttered, SlotSet, UserUttered

    logger = logging.getLogger("nlu.rasa_server")
    original = RemoteAction.run

    async def run(
        self: RemoteAction,
        output_channel: Any,
        nlg: Any,
        tracker: Any,
        domain: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        try:
            return await original(self, output_channel, nlg, tracker, domain, *args, **kwargs)
        except ActionExecutionRejection:
            raise
        except Exception as error:  # the action server is down, timed out, or answered with an error
            # The error's type only: its text may carry the resident's words.
            logger.error("custom action %s failed: %s", self.name(), type(error).__name__)
            said = []  # said once a turn, however many actions fail in it
            for event in reversed(tracker.events):
                if isinstance(event, UserUttered):
                    break
                said.append(isinstance(event, BotUttered) and event.text == ACTIONS_DOWN)
            events: list[Any] = [] if any(said) else [BotUttered(ACTIONS_DOWN)]
            asked = tracker.get_slot(REQUESTED_SLOT)
            if self.name().startswith("validate_") and asked:
                events.append(SlotSet(asked, None))
            elif tracker.active_loop_name is None and (ended := _form_ended_this_turn(tracker)):
                form, last = ended  # e.g. the submit after the form: open the form again at its last question
                events += [ActiveLoop(form), SlotSet(last, None), SlotSet(REQUESTED_SLOT, last)]
            return events

    def _form_ended_this_turn(tracker: Any) -> tuple[str, str] | None:
        """(form, the slot it last asked) when a form completed since the resident's last message (the form
        itself ended it, not a rule such as an emergency's action_deactivate_loop): the action that failed
        ran after it (the form's submit), so nothing would carry the request on."""
        events = list(tracker.events)
        start = max((i for i, e in enumerate(events) if isinstance(e, UserUttered)), default=-1)
        form = next((e.name for e in reversed(events[: start + 1]) if isinstance(e, ActiveLoop)), None)
        asked = next(
            (
                e.value
                for e in reversed(events[: start + 1])
                if isinstance(e, SlotSet) and e.key == REQUESTED_SLOT
            ),
            None,
        )
        last_action = None
        for event in events[start + 1 :]:
            if isinstance(event, ActionExecuted):
                last_action = event.action_name
            elif (
                isinstance(event, ActiveLoop)
                and event.name is None
                and form
                and last_action == form
                and asked
            ):
                return str(form), str(asked)
        return None

    RemoteAction.run = run


def _keep_conversations_while_the_store_is_away() -> None:
    """Rasa's FailSafeTrackerStore saves a tracker to memory when its store fails, but reads only from the
    store: failing, it returns no tracker and the message starts a new conversation. Here

    * a conversation kept in memory is read from memory, and saved there, for as long as it is kept;
    * once the store answers again, what was said meanwhile is appended to the store's copy (Rasa's SQL store
      appends the events beyond those of its last session) and the memory copy is dropped;
    * the store's errors are logged as their type only: their text quotes the SQL parameters (the sender,
      the events).

    A conversation the store held before it went away cannot be read meanwhile: if this process has seen it
    in the store (the last KNOWN_CONVERSATIONS it read or wrote there), its message is refused
    (ConversationAway: a 503 to the relay, which keeps the message and sends it again); one it has not seen
    is taken as new, in memory (a resident's first words: they can still file a request while the database
    is away, which the action server keeps for later)."""
    import logging
    from collections import OrderedDict

    from rasa.core.tracker_store import FailSafeTrackerStore, InMemoryTrackerStore

    from nlu.channels import ConversationAway

    logger = logging.getLogger("nlu.rasa_server")

    def kept(self: FailSafeTrackerStore) -> InMemoryTrackerStore:
        memory = self.fallback_tracker_store
        assert isinstance(memory, InMemoryTrackerStore)
        return memory

    seen: OrderedDict[str, None] = OrderedDict()  # senders whose conversation is in the store, newest last

    def saw(sender_id: str) -> None:
        seen[sender_id] = None
        seen.move_to_end(sender_id)
        if len(seen) > KNOWN_CONVERSATIONS:
            seen.popitem(last=False)

    async def retrieve(self: FailSafeTrackerStore, sender_id: str) -> Any:
        memory = kept(self)
        in_memory = await memory.retrieve(sender_id)
        try:
            stored = await self._tracker_store.retrieve(sender_id)
        except Exception as error:
            self.on_tracker_store_retrieve_error(error)
            if in_memory is None and sender_id in seen:
                raise ConversationAway() from None  # the store's error text quotes the sender: not kept
            return in_memory
        if in_memory is None:
            if stored is not None:
                saw(sender_id)
            return stored
        if stored is None:
            stored = in_memory
        else:
            stored.update_with_events(list(in_memory.events), self.domain, override_timestamp=False)
        try:
            await self._tracker_store.save(stored)
        except Exception as error:
            self.on_tracker_store_error(error)
            return in_memory
        memory.store.pop(sender_id, None)
        saw(sender_id)
        logger.info("a conversation kept in memory while the conversation store was away is stored again")
        return stored

    async def save(self: FailSafeTrackerStore, tracker: Any) -> None:
        memory = kept(self)
        if tracker.sender_id in memory.store:  # written to the store by the next retrieve that reaches it
            await memory.save(tracker)
            return
        try:
            await self._tracker_store.save(tracker)
        except Exception as error:
            self.on_tracker_store_error(error)
            await memory.save(tracker)
        else:
            saw(tracker.sender_id)

    def store_failed(self: FailSafeTrackerStore, error: Exception) -> None:
        health.note_store_error(error)
        logger.error(
            "the conversation store failed (%s): conversations are kept in memory until it is back",
            type(error).__name__,
        )

    FailSafeTrackerStore.retrieve = retrieve
    FailSafeTrackerStore.save = save
    FailSafeTrackerStore.on_tracker_store_error = store_failed
    FailSafeTrackerStore.on_tracker_store_retrieve_error = store_failed


def _answer_each_relayed_message_once() -> None:
    """A relayed message (its id given by the relay, nlu/channels.RELAYED_ID) that the conversation already
    holds is not taken again: the bot's replies that followed it then are sent again, and nothing is added to
    the conversation. Looked for in the tracker Rasa reads for the message anyway, under the conversation's
    lock, so a message still being answered is waited for, not taken twice."""
    from rasa.core.channels.channel import CollectingOutputChannel
    from rasa.core.processor import MessageProcessor
    from rasa.shared.core.events import BotUttered, UserUttered

    from nlu.channels import RELAYED_ID

    class Answered(Exception):
        def __init__(self, replies: list[BotUttered]) -> None:
            self.replies = replies

    def answered_before(tracker: Any, message_id: str) -> list[BotUttered] | None:
        """The bot's replies to the message, or None if the conversation does not hold it."""
        events = list(tracker.events)
        for i in range(len(events) - 1, -1, -1):
            event = events[i]
            if isinstance(event, UserUttered) and event.message_id == message_id:
                replies = []
                for later in events[i + 1 :]:
                    if isinstance(later, UserUttered):
                        break
                    if isinstance(later, BotUttered):
                        replies.append(later)
                return replies
        return None

    take_message = MessageProcessor._handle_message_with_tracker
    handle_message = MessageProcessor.handle_message

    async def take_once(self: MessageProcessor, message: Any, tracker: Any) -> None:
        if str(message.message_id or "").startswith(RELAYED_ID):
            replies = answered_before(tracker, message.message_id)
            if replies is not None:
                raise Answered(replies)  # before the tracker is changed or saved: out of handle_message
        await take_message(self, message, tracker)

    async def handle_once(self: MessageProcessor, message: Any) -> Any:
        try:
            return await handle_message(self, message)
        except Answered as answered:
            for reply in answered.replies:
                await message.output_channel.send_response(message.sender_id, reply.message())
            if isinstance(message.output_channel, CollectingOutputChannel):
                return message.output_channel.messages
            return None

    MessageProcessor._handle_message_with_tracker = take_once  # type: ignore[method-assign]
    MessageProcessor.handle_message = handle_once  # type: ignore[method-assign]


def _validate_action_responses_once() -> None:
    import jsonschema
    from rasa.core.actions.action import RemoteAction

    original = RemoteAction._validate_action_result
    schema = RemoteAction.action_response_format_spec()
    validator_for = jsonschema.validators.validator_for(schema)
    validator_for.check_schema(schema)  # once, instead of on every action call
    item = schema["properties"]["events"]["items"]
    base = {key: value for key, value in item.items() if key != "oneOf"}
    by_event = {
        branch["properties"]["event"]["const"]: validator_for({**base, "allOf": [branch]})
        for branch in item["oneOf"]
    }
    responses = validator_for(schema["properties"]["responses"])

    def quick_check(result: Any) -> bool:
        if not isinstance(result, dict):
            return False
        events = result.get("events", [])
        if not isinstance(events, list) or not responses.is_valid(result.get("responses", [])):
            return False
        for event in events:
            validator = by_event.get(event.get("event")) if isinstance(event, dict) else None
            if validator is None or not validator.is_valid(event):
                return False
        return True

    def validate_action_result(self: RemoteAction, result: dict[str, Any]) -> bool:
        if quick_check(result):
            return True
        return bool(original(self, result))  # raises Rasa's own error, with its message

    RemoteAction._validate_action_result = validate_action_result


def _resolve_event_types_once() -> None:
    from rasa.shared.core.events import Event
    from rasa.shared.utils.common import all_subclasses

    original = Event.resolve_by_type
    known: dict[str, type[Event]] = {}

    def resolve_by_type(type_name: str, default: type[Event] | None = None) -> type[Event] | None:
        if not known:
            for cls in all_subclasses(Event):  # Rasa's order: the first class with a name wins
                known.setdefault(cls.type_name, cls)
        return known.get(type_name) or original(type_name, default)

    Event.resolve_by_type = staticmethod(resolve_by_type)  # type: ignore[method-assign]


def main() -> None:
    install()
    from rasa.__main__ import main as rasa_main

    sys.argv[0] = "rasa"
    rasa_main()


if __name__ == "__main__":
    main()
