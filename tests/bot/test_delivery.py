"""Outbox delivery against the fake Bot API: Telegram answering 429 (RetryAfter honoured) and 500 (backoff),
nothing sent twice, a restart in the middle of a batch; the two ways updates arrive (long polling,
webhook with its secret token); and an emergency's alerts."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import aiohttp
from sqlalchemy import select

from bot.app import build_application, minhu_of, running
from bot.delivery import LEASE, Delivery
from tests.bot.conftest import RESIDENT, STAFF, FakeRasa, Telegram, config_for
from tests.bot.fake_api import FakeBotAPI
from tests.conftest import Org
from tests.e2e.conftest import free_port
from tickets.clock import ManualClock
from tickets.models import Notification
from tickets.outbox import Claimed, Kind, Recipient
from tickets.service import NewTicket


async def offers(tg: Telegram, org: Org, count: int) -> list[str]:
    """`count` eldercare tickets, each offered to vol-a1 (Telegram 1001) among others."""
    numbers = []
    for i in range(count):
        resident = await org.resident(f"r{i}", compound="安居苑")
        numbers.append(
            (await org.service.create_ticket(NewTicket(resident, "eldercare", f"助餐 {i}"))).number
        )
    return numbers


async def outbox(org: Org) -> list[Notification]:
    async with org.service.sessions() as session:
        return list(await session.scalars(select(Notification).order_by(Notification.id)))


GRID_WORKER = 4001  # grid-a1, bound in the test that needs it


def offer_texts(api: FakeBotAPI) -> list[str]:
    return [c.text.splitlines()[0] for c in api.delivered(1001)]


async def test_429_is_honoured_then_delivered_once(tg: Telegram, org: Org, clock: ManualClock) -> None:
    numbers = await offers(tg, org, 2)
    tg.api.fail_next(1, status=429, retry_after=7)
    assert await tg.deliver() == 0  # the batch stops at Telegram's 429
    rows = [n for n in await outbox(org) if n.delivered_at is None]
    assert rows and all(n.next_attempt_at == clock.now() + timedelta(seconds=7) for n in rows)
    assert await tg.deliver() == 0  # not before Telegram said
    clock.advance(timedelta(seconds=7))
    await tg.deliver()
    assert sorted(offer_texts(tg.api)) == sorted(f"📋 新工单 {n}(先接先得)" for n in numbers)
    assert all(n.delivered_at is not None for n in await outbox(org))


async def test_500_backs_off_and_retries(tg: Telegram, org: Org, clock: ManualClock) -> None:
    await offers(tg, org, 1)
    tg.api.fail_next(2, status=500)
    await tg.deliver()
    failed = [n for n in await outbox(org) if n.delivered_at is None]
    assert failed and failed[0].attempts == 1 and "Internal Server Error" in (failed[0].last_error or "")
    clock.advance(timedelta(seconds=2))
    await tg.deliver()
    clock.advance(timedelta(seconds=4))
    await tg.deliver()
    assert all(n.delivered_at is not None for n in await outbox(org))
    assert len(offer_texts(tg.api)) == 1


async def test_a_restart_mid_delivery_sends_every_notification_once(
    tg: Telegram, org: Org, api: FakeBotAPI, rasa: FakeRasa, clock: ManualClock
) -> None:
    numbers = await offers(tg, org, 3)
    api.fail_next(1, status=0)  # the first send hangs: the process is killed there
    first = asyncio.create_task(tg.deliver())
    await asyncio.wait_for(api.hung.wait(), 10)
    first.cancel()
    api.failures.clear()

    restarted = build_application(config_for(api, rasa.url), org.service)
    async with restarted:
        delivery = Delivery(minhu_of(restarted), restarted.bot)
        assert await delivery.run_once() == 0  # leased by the dead worker
        clock.advance(LEASE + timedelta(seconds=1))
        await delivery.run_once()
        assert await delivery.run_once() == 0
    await minhu_of(restarted).relay.rasa.close()
    texts = offer_texts(api)
    assert sorted(texts) == sorted(f"📋 新工单 {n}(先接先得)" for n in numbers)  # each once
    assert all(n.delivered_at is not None for n in await outbox(org))


async def test_unreachable_recipients_are_given_up_with_the_reason(tg: Telegram, org: Org) -> None:
    resident = await org.resident("web-only")
    await org.service.create_ticket(NewTicket(resident, "facility_repair", "路灯"))  # grid-a1: no Telegram
    await tg.deliver()
    rows = await outbox(org)
    assert rows and all(n.delivered_at is not None and "未送达" in (n.last_error or "") for n in rows)


async def test_polling_receives_updates_from_get_updates(
    tg: Telegram, api: FakeBotAPI, rasa: FakeRasa, org: Org
) -> None:
    application = build_application(config_for(api, rasa.url), org.service)
    api.updates.append(tg.text_update(RESIDENT, "你好"))
    async with running(application, config_for(api, rasa.url), deliver=False):
        for _ in range(200):
            if api.texts(RESIDENT):
                break
            await asyncio.sleep(0.02)
    assert api.texts(RESIDENT) == ["收到:你好"]
    assert any(c.method == "getUpdates" for c in api.calls)


async def test_webhook_checks_the_secret_token(
    tg: Telegram, api: FakeBotAPI, rasa: FakeRasa, org: Org
) -> None:
    port = free_port()
    config = config_for(
        api, rasa.url, webhook_url="https://minhu.example/telegram", webhook_secret="s3cret", port=port
    )
    application = build_application(config, org.service)
    url = f"http://127.0.0.1:{port}/telegram"
    async with running(application, config, webhook=True, deliver=False), aiohttp.ClientSession() as http:
        assert api.webhook["secret_token"] == "s3cret"
        update = tg.text_update(RESIDENT, "门口有垃圾")
        async with http.post(url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"}) as r:
            assert r.status == 403
        async with http.post(url, json=update) as r:
            assert r.status == 403
        for _ in range(2):  # Telegram repeats it: processed once
            async with http.post(
                url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret"}
            ) as r:
                assert r.status == 200
        for _ in range(200):
            if api.texts(RESIDENT):
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
    assert rasa.received == [(f"telegram:{RESIDENT}", "门口有垃圾")]


async def test_one_users_updates_in_order_different_users_at_once(
    tg: Telegram, api: FakeBotAPI, rasa: FakeRasa, org: Org
) -> None:
    rasa.delay = 0.3
    for text in ("一", "二", "三"):
        api.updates.append(tg.text_update(RESIDENT, text))
    api.updates.append(tg.text_update(RESIDENT + 1, "别人"))
    application = build_application(config_for(api, rasa.url), org.service)
    async with running(application, config_for(api, rasa.url), deliver=False):
        for _ in range(300):
            if len(rasa.received) == 4:
                break
            await asyncio.sleep(0.02)
    mine = [m for s, m in rasa.received if s == f"telegram:{RESIDENT}"]
    assert mine == ["一", "二", "三"]
    assert [m for _, m in rasa.received].index("别人") < 2  # not queued behind the first resident


async def test_a_request_registered_later_sends_the_resident_its_number(
    tg: Telegram, org: Org, clock: ManualClock
) -> None:
    resident = (await org.service.resident_for(f"telegram:{RESIDENT}")).id
    await org.service.remember_resident(resident, community="anju")
    made = clock.now()
    clock.advance(timedelta(minutes=20))
    ticket = await org.service.create_ticket(
        NewTicket(resident, "property", "3栋电梯坏了", received_at=made, announce=True)
    )
    await tg.deliver()
    assert tg.api.texts(RESIDENT) == [f"您之前提交的诉求已登记,工单号 {ticket.number},我们会尽快安排。"]
    delivery = Delivery(tg.minhu, tg.application.bot)
    for extra, words in (
        ({"duplicate": True}, "已经补充到这张工单里"),
        ({"handoff": True}, "转人工请求已登记"),
    ):
        payload = {"number": ticket.number, "category": "property", **extra}
        note = Claimed(0, Kind.REGISTERED, Recipient.RESIDENT, resident, ticket.id, payload)
        text, markup = await delivery.render(note)
        assert words in text and ticket.number in text and markup is None


async def test_an_emergency_reaches_the_staff_and_the_grid_worker_at_once(tg: Telegram, org: Org) -> None:
    """紧急求助: the staff member it is assigned to gets the card headed 🆘, the grid worker of the resident's
    grid an alert saying what, where and who has it."""
    await tg.bind(STAFF, "staff-a")
    await tg.bind(GRID_WORKER, "grid-a1")
    tg.api.clear()
    resident = await org.resident("em", compound="安居苑")
    ticket = (await org.service.emergency(resident, "楼下有个老人晕倒了叫不醒", "medical")).ticket
    await tg.deliver()
    [card] = tg.api.delivered(STAFF)
    assert (
        card.text.startswith(f"🆘 紧急求助 {ticket.number}") and "【急病受伤】楼下有个老人晕倒了" in card.text
    )
    assert "接单" in str(card.params.get("reply_markup"))
    [alert] = tg.api.delivered(GRID_WORKER)
    assert alert.text.startswith(f"🆘 紧急求助 {ticket.number}") and "已派给周*" in alert.text
    assert "晕倒了叫不醒" in alert.text and "类别:紧急求助(紧急)" in alert.text
