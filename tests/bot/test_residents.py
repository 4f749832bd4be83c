"""Residents through the real PTB Application and the fake Bot API: the assistant relay (text, buttons, long
replies), /start, /help, /mytickets, photos and locations, voice, repeated updates, Rasa down then up."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from bot.rasa import CUSTOM_NOTICE, STORED_NOTICE, WAIT_NOTICE, RasaClient
from bot.residents import NO_OPEN_TICKET, VOICE
from tests.bot.conftest import RESIDENT, FakeRasa, Telegram
from tests.conftest import Org
from tests.e2e.conftest import free_port
from tickets.channels import BUTTON_PAYLOADS_KEPT, UPDATE_IDS_KEPT
from tickets.clock import ManualClock
from tickets.models import ButtonPayload, InboundMessage, ProcessedUpdate, TicketEvent
from tickets.service import NewTicket


async def test_text_goes_to_rasa_as_the_telegram_sender_and_the_reply_comes_back(
    tg: Telegram, rasa: FakeRasa
) -> None:
    replies = await tg.say(RESIDENT, "楼道的灯坏了")
    assert rasa.received == [(f"telegram:{RESIDENT}", "楼道的灯坏了")]
    assert rasa.sender_headers == [f"telegram:{RESIDENT}"]  # the entry's hash: one sender, one Rasa replica
    assert replies == ["收到:楼道的灯坏了"]


async def test_rasa_buttons_become_inline_keyboards_and_presses_go_back_as_payloads(
    tg: Telegram, rasa: FakeRasa
) -> None:
    long_payload = '/inform{"community": "' + "安居社区" * 10 + '"}'
    rasa.script = lambda sender, message: (
        [
            {
                "text": "请选择:",
                "buttons": [
                    {"title": "居家养老", "payload": "/eldercare"},
                    {"title": "长", "payload": long_payload},
                ],
            }
        ]
        if message == "你好"
        else [{"text": f"选了 {message}"}]
    )
    await tg.say(RESIDENT, "你好")
    buttons = tg.api.sent(RESIDENT)[-1].buttons
    assert buttons[0] == ("居家养老", "r:/eldercare")
    assert buttons[1][1].startswith("rb:") and len(buttons[1][1].encode()) <= 64
    calls = await tg.press(RESIDENT, buttons[1][1])
    assert rasa.received[-1] == (f"telegram:{RESIDENT}", long_payload)
    assert any(c.method == "editMessageReplyMarkup" for c in calls)  # one press only
    await tg.press(RESIDENT, "r:/eldercare")
    assert rasa.received[-1][1] == "/eldercare"


async def test_unknown_or_expired_buttons_get_a_polite_answer(tg: Telegram, rasa: FakeRasa) -> None:
    for data in ("rb:999999", "zzz", "r:", "fb:MH-1:9"):
        calls = await tg.press(RESIDENT, data)
        assert rasa.received == []
        answers = tg.answers(calls)
        assert answers, data
    assert "失效" in tg.answers(await tg.press(RESIDENT, "rb:999999"))[0]


async def test_images_are_sent_as_photos_and_custom_payloads_are_refused_clearly(
    tg: Telegram, rasa: FakeRasa
) -> None:
    rasa.script = lambda s, m: [{"image": "https://example.org/map.png"}, {"custom": {"map": [1, 2]}}]
    await tg.say(RESIDENT, "在哪里")
    assert tg.api.sent(RESIDENT, "sendPhoto")[0].params["photo"] == "https://example.org/map.png"
    assert tg.api.texts(RESIDENT)[-1] == CUSTOM_NOTICE


async def test_long_replies_are_split_at_the_telegram_limit(tg: Telegram, rasa: FakeRasa) -> None:
    rasa.script = lambda s, m: [{"text": ("很长的说明。" * 100 + "\n") * 12}]
    await tg.say(RESIDENT, "材料")
    parts = tg.api.texts(RESIDENT)
    assert len(parts) >= 2 and all(len(p) <= 4096 for p in parts)
    assert sum(len(p) for p in parts) >= 7000


async def test_start_explains_what_is_stored_and_records_consent(tg: Telegram, org: Org) -> None:
    replies = await tg.say(RESIDENT, "/start")
    assert "保存" in replies[0] and "打码" in replies[0]
    assert tg.api.sent(RESIDENT)[-1].buttons == [("同意", "consent")]
    await tg.press(RESIDENT, "consent")
    resident = await org.service.resident_for(f"telegram:{RESIDENT}")
    assert resident.consent_at is not None
    assert "/mytickets" in (await tg.say(RESIDENT, "/help"))[0]


async def test_mytickets_lists_only_the_residents_own_tickets(tg: Telegram, org: Org) -> None:
    assert "还没有" in (await tg.say(RESIDENT, "/mytickets"))[0]
    me = await org.service.resident_for(f"telegram:{RESIDENT}")
    await org.service.remember_resident(me.id, community="anju")
    mine = await org.service.create_ticket(NewTicket(me.id, "facility_repair", "路灯不亮"))
    theirs = await org.service.create_ticket(NewTicket(await org.resident("other"), "environment", "垃圾"))
    listing = (await tg.say(RESIDENT, "/mytickets"))[0]
    assert mine.number in listing and theirs.number not in listing


async def test_photo_and_location_attach_to_the_latest_open_ticket(tg: Telegram, org: Org) -> None:
    photo = [{"file_id": "small", "file_unique_id": "s", "width": 90, "height": 90, "file_size": 1000},
             {"file_id": "big-file-id", "file_unique_id": "b", "width": 900, "height": 900, "file_size": 90_000}]  # fmt: skip
    await tg.feed(tg.message(RESIDENT, photo=photo))
    assert tg.api.texts(RESIDENT)[-1] == NO_OPEN_TICKET
    me = await org.service.resident_for(f"telegram:{RESIDENT}")
    await org.service.remember_resident(me.id, community="anju")
    ticket = await org.service.create_ticket(NewTicket(me.id, "facility_repair", "井盖松了"))
    await tg.feed(tg.message(RESIDENT, photo=photo))
    await tg.feed(tg.message(RESIDENT, location={"latitude": 30.5928, "longitude": 114.3055}))
    huge = [{**photo[1], "file_size": 50 * 1024 * 1024}]
    await tg.feed(tg.message(RESIDENT, photo=huge))
    assert "太大" in tg.api.texts(RESIDENT)[-1]
    async with org.service.sessions() as session:
        events = (
            await session.scalars(
                select(TicketEvent).where(TicketEvent.ticket_id == ticket.id, TicketEvent.action == "attach")
            )
        ).all()
    assert [e.data["kind"] for e in events] == ["photo", "location"]
    assert events[0].data["file_id"] == "big-file-id" and events[1].data["latitude"] == 30.5928


async def test_voice_is_refused_honestly(tg: Telegram, rasa: FakeRasa) -> None:
    await tg.feed(tg.message(RESIDENT, voice={"file_id": "v", "file_unique_id": "v", "duration": 3}))
    assert tg.api.texts(RESIDENT) == [VOICE]
    assert rasa.received == []


async def test_a_repeated_update_is_processed_once(tg: Telegram, rasa: FakeRasa) -> None:
    update = tg.text_update(RESIDENT, "电梯坏了")
    await tg.feed(update)
    await tg.feed(update)
    assert rasa.received == [(f"telegram:{RESIDENT}", "电梯坏了")]
    assert tg.api.texts(RESIDENT) == ["收到:电梯坏了"]


async def test_rasa_down_then_up_loses_nothing_and_answers_once_in_order(
    tg: Telegram, rasa: FakeRasa, org: Org
) -> None:
    rasa.up = False
    for text in ("第一条", "第二条", "第三条"):
        assert await tg.say(RESIDENT, text) == [STORED_NOTICE]
    assert rasa.received == []
    assert await tg.minhu.relay.replay(tg.application.bot) == 0  # still down: nothing lost, nothing sent
    rasa.up = True
    assert await tg.minhu.relay.replay(tg.application.bot) == 3
    assert [m for _, m in rasa.received] == ["第一条", "第二条", "第三条"]
    assert rasa.sender_headers == [f"telegram:{RESIDENT}"] * 3  # replayed calls name the sender too
    assert await tg.minhu.relay.replay(tg.application.bot) == 0  # answered once
    texts = tg.api.texts(RESIDENT)[3:]
    assert [t for t in texts if t.startswith("收到")] == ["收到:第一条", "收到:第二条", "收到:第三条"]
    async with org.service.sessions() as session:
        waiting = await session.scalar(
            select(func.count()).select_from(InboundMessage).where(InboundMessage.answered_at.is_(None))
        )
    assert waiting == 0


async def test_a_new_message_after_an_outage_is_answered_after_the_stored_ones(
    tg: Telegram, rasa: FakeRasa
) -> None:
    rasa.up = False
    await tg.say(RESIDENT, "停电前")
    rasa.up = True
    await tg.say(RESIDENT, "恢复后")
    assert [m for _, m in rasa.received] == ["停电前", "恢复后"]


async def test_a_slow_rasa_gets_a_wait_notice_and_one_answer(tg: Telegram, rasa: FakeRasa) -> None:
    rasa.delay = 0.8  # the harness tells residents to wait after 0.3 s
    replies = await tg.say(RESIDENT, "慢一点")
    assert replies == [WAIT_NOTICE, "收到:慢一点"]
    assert await tg.minhu.relay.replay(tg.application.bot) == 0


async def test_a_reply_survives_telegram_answering_429_and_500(tg: Telegram, rasa: FakeRasa) -> None:
    tg.api.fail_next(1, status=429, retry_after=1)
    await tg.say(RESIDENT, "第一句")
    tg.api.fail_next(1, status=500)
    await tg.say(RESIDENT, "第二句")
    assert [c.text for c in tg.api.delivered(RESIDENT)] == ["收到:第一句", "收到:第二句"]
    assert len(tg.api.sent(RESIDENT)) == 4  # each tried twice, delivered once
    assert [m for _, m in rasa.received] == ["第一句", "第二句"]


async def test_rasa_on_a_closed_port_counts_as_down(tg: Telegram, rasa: FakeRasa) -> None:
    relay = tg.minhu.relay
    real = relay.rasa
    relay.rasa = RasaClient(f"http://127.0.0.1:{free_port()}", timeout=5)
    try:
        assert await tg.say(RESIDENT, "有人吗") == [STORED_NOTICE]
        assert not await relay.rasa.reachable()
    finally:
        await relay.rasa.close()
        relay.rasa = real
    assert await relay.replay(tg.application.bot) == 1
    assert rasa.received == [(f"telegram:{RESIDENT}", "有人吗")]


async def test_old_update_ids_button_payloads_and_answered_messages_are_pruned(
    tg: Telegram, rasa: FakeRasa, org: Org, clock: ManualClock
) -> None:
    rasa.script = lambda s, m: [{"text": "选", "buttons": [{"title": "长", "payload": "/inform" + "x" * 80}]}]
    update = tg.text_update(RESIDENT, "你好")
    await tg.feed(update)
    token = tg.api.sent(RESIDENT)[-1].buttons[0][1]
    clock.advance(BUTTON_PAYLOADS_KEPT + timedelta(minutes=1))
    assert "失效" in tg.answers(await tg.press(RESIDENT, token))[0]  # expired, though still stored
    clock.advance(UPDATE_IDS_KEPT)
    await tg.minhu.store.prune()
    async with org.service.sessions() as session:
        for model in (ProcessedUpdate, ButtonPayload, InboundMessage):
            left = await session.scalar(select(func.count()).select_from(model))
            assert left == (1 if model is ProcessedUpdate else 0), model  # the press just now stays
    await tg.feed(update)  # Telegram would not repeat it this late; if it did, it is new again
    assert len(rasa.received) == 2
