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
  The request body itself is capped by Sanic (SANIC_REQUEST_MAX_SIZE, set by minhu/stack.py): 413.

Runs in the Rasa venv (imports nothing from the app).
"""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import Awaitable, Callable
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
TRUNCATED_NOTICE = f"您的消息太长,只保留了前 {MAX_TEXT} 个字。"


def bad_request(error: str) -> HTTPResponse:
    return response.json({"error": error}, status=400)


def parse_body(body: bytes) -> tuple[str, str] | str:
    """(sender, message) from a request body, or the error to answer with."""
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
    return sender.strip(), message


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
            sender, text = parsed
            if not self.from_relay(request):
                sender = UNTRUSTED_PREFIX + sender
            truncated = len(text) > MAX_TEXT
            text = text[:MAX_TEXT]
            collector = CollectingOutputChannel()
            await on_new_message(UserMessage(text, collector, sender, input_channel=self.name()))
            replies = collector.messages
            if truncated:
                replies = [{"recipient_id": sender, "text": TRUNCATED_NOTICE}, *replies]
            return response.json(replies)

        return webhook
