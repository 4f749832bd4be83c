"""Bad input from Telegram: empty, huge, emoji, control characters, unknown commands and buttons, stickers,
edited messages, replayed updates. Every one gets a polite Chinese reply (or is relayed intact); nothing is
lost or answered twice."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from bot.common import SORRY
from bot.residents import EDITED, EMPTY, UNKNOWN_COMMAND, UNSUPPORTED
from tests.bot.conftest import RESIDENT, STRANGER, FakeRasa, Telegram
from tests.conftest import Org
from tickets.models import InboundMessage

CHINESE = re.compile(r"[\u4e00-\u9fff]")


@pytest.mark.parametrize("text", ["\u200b", "\x00\x07", " \ufeff "])
async def test_empty_after_cleaning_is_asked_again_not_relayed(
    tg: Telegram, rasa: FakeRasa, text: str
) -> None:
    assert await tg.say(RESIDENT, text) == [EMPTY]
    assert rasa.received == []


@pytest.mark.parametrize(
    ("text", "relayed"),
    [
        ("电梯\x00坏了\x07", "电梯坏了"),
        ("👍🏻🏠 灯不亮 😡", "👍🏻🏠 灯不亮 😡"),
        ("楼" * 4096, "楼" * 4096),
        ("'; DROP TABLE tickets; --", "'; DROP TABLE tickets; --"),
    ],
)
async def test_odd_text_is_relayed_cleaned_and_answered_once(
    tg: Telegram, rasa: FakeRasa, org: Org, text: str, relayed: str
) -> None:
    replies = await tg.say(RESIDENT, text)
    assert rasa.received == [(f"telegram:{RESIDENT}", relayed)]
    assert "".join(replies) == f"收到:{relayed}" and all(len(r) <= 4096 for r in replies)
    async with org.service.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(InboundMessage)) == 1


async def test_unknown_commands_stickers_and_edits_get_a_polite_chinese_reply(
    tg: Telegram, rasa: FakeRasa
) -> None:
    assert await tg.say(STRANGER, "/frobnicate now") == [UNKNOWN_COMMAND]
    sticker = {"file_id": "s", "file_unique_id": "s", "width": 1, "height": 1, "is_animated": False,
               "is_video": False, "type": "regular"}  # fmt: skip
    await tg.feed(tg.message(STRANGER, sticker=sticker))
    await tg.feed(tg.message(STRANGER, document={"file_id": "d", "file_unique_id": "d"}))
    edit = tg.text_update(STRANGER, "改过的话")
    edit["edited_message"] = {**edit.pop("message"), "edit_date": 1}
    await tg.feed(edit)
    assert tg.api.texts(STRANGER)[1:] == [UNSUPPORTED, UNSUPPORTED, EDITED]
    assert rasa.received == []


@pytest.mark.parametrize(
    "data",
    ["zzz", "acc:", "acc:MH-00000000-0000", "asg:X:abc", "decr:MH-1:9", "fb:MH-1:1x", "rb:abc", "card:"],
)
async def test_unknown_buttons_are_answered_politely(tg: Telegram, rasa: FakeRasa, data: str) -> None:
    calls = await tg.press(STRANGER, data)
    said = [
        str(c.params.get("text") or "") for c in calls if c.method in ("answerCallbackQuery", "sendMessage")
    ]
    assert said and all(CHINESE.search(text) for text in said), said
    assert rasa.received == []


async def test_a_replayed_button_press_is_processed_once(tg: Telegram, rasa: FakeRasa) -> None:
    press = tg.press_update(RESIDENT, "r:/greet")
    await tg.feed(press)
    await tg.feed(press)
    assert rasa.received == [(f"telegram:{RESIDENT}", "/greet")]


async def test_group_chats_get_nothing(tg: Telegram, rasa: FakeRasa) -> None:
    update = tg.text_update(RESIDENT, "/mytickets")
    update["message"]["chat"] = {"id": -100123, "type": "supergroup", "title": "业主群"}
    await tg.feed(update)
    update = tg.text_update(RESIDENT, "电梯坏了")
    update["message"]["chat"] = {"id": -100123, "type": "supergroup", "title": "业主群"}
    await tg.feed(update)
    assert tg.api.sent() == [] and rasa.received == []


async def test_a_failing_handler_apologises_and_logs_no_personal_data(
    tg: Telegram, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def broken(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(tg.minhu.relay, "submit", broken)
    replies = await tg.say(RESIDENT, "我的电话是13912345678,身份证420102199001011234")
    assert replies == [SORRY]
    logged = capsys.readouterr()
    assert "handler failed" in logged.out + logged.err
    assert (
        "13912345678" not in logged.out + logged.err and "420102199001011234" not in logged.out + logged.err
    )
