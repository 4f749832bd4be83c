"""Minhu's REST channel (credentials.yml: `nlu.channels.MinhuRest`), at Rasa's REST URL /webhooks/rest/webhook.

Rasa's own RestInput takes whatever it is sent: a JSON array was a 500, numbers, nulls or a missing message a
200 with an empty reply, and any sender, so a request naming `telegram:1` acted as that Telegram resident.
This channel:

* accepts only a JSON object `{"sender": "<non-empty string>", "message": "<non-empty string>"}` (other
  keys are ignored, `metadata` and `input_channel` too); anything else is a 400 `{"error": "..."}`;
* trusts the sender only from a relay: a request carrying `X-Minhu-Relay: <MINHU_RELAY_SECRET>` (the
  secret `minhu run` passes to Rasa and to its relays, bot/rasa.py and minhu/chat.py) keeps its sender
  (`telegram:<id>`, `web:<id>`). Any other request is still answered, but as `rest:<sender>`: a namespace
  no relay uses, so it can never act as a resident of another channel. (A 403 would also be safe; the
  namespace keeps Rasa's REST channel usable by hand and by tests without the secret.) Without a secret in
  Rasa's environment no request is a relay;
* keeps the first MAX_TEXT characters of a longer message and says so in its first reply (TRUNCATED_NOTICE).
  The request body itself is capped by Sanic (SANIC_REQUEST_MAX_SIZE, set by minhu/stack.py): 413;
* answers a relayed message once: a relay names each message it stores (`message_id`, kept only from a
  relay) and sends it again when it got no answer it could keep (Rasa, the relay's database or Redis failed
  after the turn was taken); a message the conversation already holds is answered with what was said to it
  then, and the conversation does not take it a second time (nlu/rasa_server.py
  `_answer_each_relayed_message_once`);
* answers 503 `{"error": ...}` while the conversation cannot be read (its store is away: CONVERSATION_AWAY),
  so the relay keeps the message and sends it again later, instead of a conversation begun from nothing.

Runs in the Rasa venv (imports nothing from the app).
"""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.channels.rest import RestInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

RELAY_HEADER = "X-Minhu-Relay"
RELAY_SECRET_ENV = "MINHU_RELAY_SECRET"
UNTRUSTED_PREFIX = "rest:"
MAX_TEXT = 2000
MAX_SENDER = 100
MAX_MESSAGE_ID = 100
# Prefix of the message ids this channel gives relayed messages: only those are looked up in the conversation
# (Rasa gives every other message a random id of its own).
RELAYED_ID = "minhu:"
CONVERSATION_AWAY = "the conversation store is unavailable; send the message again later"
TRUNCATED_NOTICE = f"您的消息太长,只保留了前 {MAX_TEXT} 个字。"


def bad_request(error: str) -> HTTPResponse:
    return response.json({"error": error}, status=400)


class ConversationAway(Exception):
    """The sender's conversation cannot be read now (its store is away) and may hold earlier turns: raised by
    nlu/rasa_server.py's conversation store, answered 503 here."""


@dataclass(frozen=True)
class Body:
    sender: str
    message: str
    message_id: str | None  # the relay's name for the message, if it gave one


def parse_body(body: bytes) -> Body | str:
    """The request's sender, message and message id, or the error to answer with."""
    try:
        data = json.loads(body or b"")
    except (ValueError, UnicodeDecodeError):
        return "body must be JSON"
    if not isinstance(data, dict):
        return "body must be a JSON object"
    sender, message = data.get("sender"), data.get("message")
    if not isinstance(sender, str) or not sender.strip():
        return "sender must be a non-empty string"
    if len(sender) > MAX_SENDER:
        return f"sender must be at most {MAX_SENDER} characters"
    if not isinstance(message, str) or not message.strip():
        return "message must be a non-empty string"
    message_id = data.get("message_id")
    if message_id is not None and (
        not isinstance(message_id, str) or not message_id or len(message_id) > MAX_MESSAGE_ID
    ):
        return f"message_id must be a non-empty string of at most {MAX_MESSAGE_ID} characters"
    return Body(sender.strip(), message, message_id)


class MinhuRest(RestInput):
    """Rasa's REST channel, validated and with senders namespaced unless a relay sent them."""

    @classmethod
    def name(cls) -> str:
        return "rest"  # the URL: /webhooks/rest/webhook, as before

    def __init__(self, relay_secret: str | None = None) -> None:
        self.relay_secret = relay_secret if relay_secret is not None else os.environ.get(RELAY_SECRET_ENV, "")

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> MinhuRest:
        return cls()

    def from_relay(self, request: Request) -> bool:
        given = request.headers.get(RELAY_HEADER, "")
        return bool(self.relay_secret) and hmac.compare_digest(given.encode(), self.relay_secret.encode())

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = Blueprint(f"custom_webhook_{type(self).__name__}", __name__)

        @webhook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            parsed = parse_body(request.body)
            if isinstance(parsed, str):
                return bad_request(parsed)
            sender, text, message_id = parsed.sender, parsed.message, parsed.message_id
            if not self.from_relay(request):
                sender, message_id = UNTRUSTED_PREFIX + sender, None
            truncated = len(text) > MAX_TEXT
            text = text[:MAX_TEXT]
            collector = CollectingOutputChannel()
            named = RELAYED_ID + message_id if message_id else None
            message = UserMessage(text, collector, sender, input_channel=self.name(), message_id=named)
            try:
                await on_new_message(message)
            except ConversationAway:
                return response.json({"error": CONVERSATION_AWAY}, status=503)
            replies = collector.messages
            if truncated:
                replies = [{"recipient_id": sender, "text": TRUNCATED_NOTICE}, *replies]
            return response.json(replies)

        return webhook
