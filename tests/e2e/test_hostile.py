"""Hostile input (issue 12) against the real Rasa server: malformed bodies, a sender the request may not name,
Rasa's HTTP API without its token, and a huge message."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable
from typing import Any

import aiohttp
import pytest

from bot.rasa import RELAY_HEADER
from tests.e2e.conftest import Chat, Stack, form_reply

MALFORMED: dict[str, Any] = {
    "array": [{"sender": "x", "message": "你好"}],
    "numbers": {"sender": 123, "message": 456},
    "null sender": {"sender": None, "message": "你好"},
    "null message": {"sender": "x", "message": None},
    "missing message": {"sender": "x"},
    "missing sender": {"message": "你好"},
    "empty message": {"sender": "x", "message": ""},
    "blank message": {"sender": "x", "message": "   \n\t "},
    "empty sender": {"sender": "", "message": "你好"},
    "not JSON": '{"sender": "x", "message": ',
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
async def test_a_malformed_body_is_a_clean_400(stack: Stack, http: aiohttp.ClientSession, kind: str) -> None:
    body = MALFORMED[kind]
    data = body if isinstance(body, str) else json.dumps(body)
    async with http.post(stack.webhook, data=data, headers={"Content-Type": "application/json"}) as response:
        assert response.status == 400, await response.text()
        assert isinstance((await response.json())["error"], str)


async def tracker_senders(http: aiohttp.ClientSession, stack: Stack, sender: str) -> int:
    """How many user messages Rasa's tracker for `sender` holds."""
    url = f"{stack.rasa_url}/conversations/{sender}/tracker"
    async with http.get(url, params={"token": stack.token}) as response:
        assert response.status == 200, await response.text()
        return sum(event["event"] == "user" for event in (await response.json())["events"])


@pytest.mark.parametrize("header", [None, "wrong"])
async def test_a_sender_without_the_relay_secret_cannot_act_as_a_telegram_resident(
    stack: Stack, http: aiohttp.ClientSession, header: str | None
) -> None:
    sender = f"telegram:9{len(header or '')}77"
    headers = {RELAY_HEADER: header} if header else {}
    async with http.post(stack.webhook, json={"sender": sender, "message": "你好"}, headers=headers) as r:
        assert r.status == 200, await r.text()
    assert await tracker_senders(http, stack, sender) == 0  # the resident's conversation is untouched
    assert await tracker_senders(http, stack, f"rest:{sender}") == 1  # answered in its own namespace


async def test_a_relay_keeps_its_sender(stack: Stack, http: aiohttp.ClientSession) -> None:
    await Chat(http, stack, "relayed").say("你好")
    assert await tracker_senders(http, stack, "web:relayed") == 1


async def test_a_relayed_message_sent_again_is_answered_from_the_record(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    """A relay sends a message again when it could not keep the answer (tests/faults): the conversation takes
    it once, the repeat gets the same replies, and the form goes on from where it was."""
    chat = Chat(http, stack, "said-twice")
    first = await chat.say("小区电梯坏了三天了物业不管", message_id="1.20261128200000000000")
    assert "我来帮您登记" in chat.text
    answer = form_reply(chat.text)
    assert answer is not None
    question = await chat.say(answer, message_id="2.20261128200001000000")  # the form's first answer
    again = await chat.say(answer, message_id="2.20261128200001000000")
    assert again == question and again != first
    assert await tracker_senders(http, stack, "web:said-twice") == 2
    assert "已受理" in await chat.answer_form()  # the repeat was not taken as the next answer
    # Another sender's message of the same id is its own: ids are looked up in the sender's conversation.
    other = Chat(http, stack, "said-once")
    await other.say("小区电梯坏了三天了物业不管", message_id="2.20261128200001000000")
    assert "我来帮您登记" in other.text


@pytest.mark.parametrize("path", ["/conversations/web:x/tracker", "/status", "/domain"])
async def test_rasa_api_needs_the_token(stack: Stack, http: aiohttp.ClientSession, path: str) -> None:
    async with http.get(stack.rasa_url + path) as response:
        assert response.status in (401, 403)
    async with http.get(stack.rasa_url + path, params={"token": "wrong"}) as response:
        assert response.status in (401, 403)
    async with http.post(
        f"{stack.rasa_url}/conversations/web:x/tracker/events", json=[{"event": "slot", "name": "a"}]
    ) as response:
        assert response.status in (401, 403)


async def test_a_huge_message_is_shortened_and_the_resident_is_told(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    """…and another resident talking at the same moment is not kept waiting behind it."""
    chat, neighbour = Chat(http, stack, "huge-20k"), Chat(http, stack, "huge-20k-neighbour")

    async def seconds(said: Awaitable[object]) -> float:
        started = time.monotonic()
        await said
        return time.monotonic() - started

    huge, other = await asyncio.gather(
        seconds(chat.say("楼道灯坏了" * 4000)),  # 20,000 characters
        seconds(neighbour.say("你好")),
    )
    assert huge < 15 and "只保留了前 2000 个字" in chat.text
    assert other < 5 and neighbour.text and "只保留" not in neighbour.text


async def test_a_body_over_the_size_limit_is_refused(stack: Stack, http: aiohttp.ClientSession) -> None:
    started = time.monotonic()
    async with http.post(stack.webhook, json={"sender": "x", "message": "灯" * 2_000_000}) as response:
        assert response.status == 413
    assert time.monotonic() - started < 15
