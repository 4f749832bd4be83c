"""Responders and staff through the real PTB Application and the fake Bot API: joining, an offer to three
volunteers with two accepting at once, the card (phone, note, message, return, 办结), the resident's rating,
points, duty, and escalation messages to staff (ManualClock, no sleeps)."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta
from pathlib import Path

from bot.app import build_application, minhu_of
from bot.responders import TAKEN
from tests.bot.conftest import RESIDENT, STAFF, STRANGER, VOLUNTEER, FakeRasa, Telegram, config_for
from tests.bot.fake_api import FakeBotAPI
from tests.conftest import FIXTURES, Org
from tickets.clock import ManualClock
from tickets.db import unit_of_work
from tickets.models import Status, Ticket
from tickets.org import load_org, parse_org
from tickets.service import NewTicket


async def resident_ticket(
    tg: Telegram, org: Org, category: str = "eldercare", text: str = "想给我妈申请助餐"
) -> Ticket:
    me = await org.service.resident_for(f"telegram:{RESIDENT}")
    await org.service.remember_resident(me.id, community="anju", compound="安居苑", phone="13912345678")
    return await org.service.create_ticket(NewTicket(me.id, category, text, address="3栋501"))


async def test_join_binds_once_and_strangers_get_no_responder_features(tg: Telegram) -> None:
    assert "只对已登记" in (await tg.say(STRANGER, "/my"))[0]
    assert "邀请码" in (await tg.say(STRANGER, "/join"))[0]
    assert "无效" in (await tg.say(STRANGER, "/join NOPE1234"))[0]
    code = await tg.minhu.store.create_invite("vol-a2")
    assert "绑定成功" in (await tg.say(STRANGER, f"/join {code.lower()}"))[0]
    assert "无效" in (await tg.say(4242, f"/join {code}"))[0]  # one time only
    assert "没有在办" in (await tg.say(STRANGER, "/my"))[0]


async def test_offer_to_three_two_accept_at_once_one_wins_the_others_see_taken(
    tg: Telegram, org: Org
) -> None:
    for user, code in ((1002, "vol-a2"), (1003, "vol-a3"), (1004, "sw-a")):
        await tg.bind(user, code)
    ticket = await resident_ticket(tg, org)
    assert ticket.status == Status.DISPATCHED
    assert await tg.deliver() >= 3
    offers = {c.chat_id: c for c in tg.api.delivered() if c.text.startswith("📋 新工单")}
    assert len(offers) == 3, [c.text for c in tg.api.delivered()]
    first, second, third = sorted(offers)
    offer = offers[first]
    assert ("接单", f"acc:{ticket.number}") in offer.buttons and "想给我妈申请助餐" in offer.text
    assert "139****5678" in offer.text and "13912345678" not in offer.text

    await asyncio.gather(
        tg.press(first, f"acc:{ticket.number}", offers[first]),
        tg.press(second, f"acc:{ticket.number}", offers[second]),
    )
    winner = (await org.service.ticket(ticket.number, org.service_actor)).assignee_id
    taken = TAKEN.format(number=ticket.number)
    winners = [c for c in tg.api.calls if c.method == "editMessageText" and "您已接单" in c.text]
    assert len(winners) == 1 and winners[0].chat_id in (first, second)
    assert winner == org[{1001: "vol-a1", 1002: "vol-a2", 1003: "vol-a3", 1004: "sw-a"}[winners[0].chat_id]]
    loser = ({first, second} - {winners[0].chat_id}).pop()
    assert [c.text for c in tg.api.calls if c.method == "editMessageText" and c.chat_id == loser] == [taken]

    await tg.deliver()  # the "taken" notices edit the other offers in place, once
    edits = [c for c in tg.api.calls if c.method == "editMessageText" and c.text == taken and c.result]
    assert sorted(c.chat_id for c in edits) == sorted({first, second, third} - {winners[0].chat_id})
    assert not any(taken in c.text for c in tg.api.sent(method="sendMessage"))  # no second copy
    assert await tg.deliver() == 0


async def test_card_resolve_rating_and_points(tg: Telegram, org: Org, clock: ManualClock) -> None:
    ticket = await resident_ticket(tg, org, "facility_repair", "楼下路灯不亮")  # direct: grid-a1
    await tg.bind(1101, "grid-a1")
    await tg.deliver()
    assigned = tg.api.delivered(1101)[-1]
    assert assigned.buttons[0] == ("接单", f"acc:{ticket.number}")
    await tg.press(1101, f"acc:{ticket.number}", assigned)
    tg.api.clear()
    assert ticket.number in (await tg.say(1101, "/my"))[0]
    card = tg.api.delivered(1101)[-1]
    assert {data.split(":")[0] for _, data in card.buttons} == {"call", "msg", "note", "ret", "done"}

    calls = await tg.press(1101, f"call:{ticket.number}")
    assert any("13912345678" in c.text for c in calls if c.method == "sendMessage")

    await tg.deliver()  # the resident hears it was accepted
    await tg.press(1101, f"msg:{ticket.number}")
    assert "正在发给居民" in (await tg.say(1101, "我明天上午九点到"))[-1]
    tg.api.fail_next(1, status=502)
    assert await tg.deliver() == 0  # Telegram failed: kept for a retry, not taken as sent
    assert not any("我明天上午九点到" in c.text for c in tg.api.delivered(RESIDENT))
    clock.advance(timedelta(seconds=10))
    assert await tg.deliver() == 1
    assert "我明天上午九点到" in tg.api.delivered(RESIDENT)[-1].text

    await tg.press(1101, f"note:{ticket.number}")
    assert "已添加" in (await tg.say(1101, "已联系居民"))[0]

    await tg.press(1101, f"done:{ticket.number}")
    assert "不能为空" in (await tg.say(1101, " \u200b "))[0]  # still waiting for the note
    assert "已办结" in (await tg.say(1101, "已更换灯泡"))[-1]
    assert (await org.service.ticket(ticket.number, org.service_actor)).status == Status.RESOLVED

    await tg.deliver()
    ask = tg.api.delivered(RESIDENT)[-1]
    assert "回访(1/3)" in ask.text
    for data in (f"fb:{ticket.number}:1", f"fb:{ticket.number}:11"):
        calls = await tg.press(RESIDENT, data, ask)
    question = next(c for c in calls if c.method == "editMessageText")
    assert "满意吗" in question.text and [t for t, _ in question.buttons] == ["满意", "基本满意", "不满意"]
    calls = await tg.press(RESIDENT, f"fb:{ticket.number}:11s", ask)
    assert any("已结案" in c.text for c in calls if c.method == "editMessageText")
    closed = await org.service.ticket(ticket.number, org.service_actor)
    assert closed.status == Status.CLOSED and closed.rating == "satisfied"

    await tg.deliver()
    assert "积分 +" in tg.api.delivered(1101)[-1].text
    assert "爱心积分:" in (await tg.say(1101, "/points"))[0]


async def test_decline_with_a_reason_and_return_with_a_reason(tg: Telegram, org: Org) -> None:
    ticket = await resident_ticket(tg, org, "facility_repair", "井盖松动")
    await tg.bind(1101, "grid-a1")
    await tg.deliver()
    calls = await tg.press(1101, f"dec:{ticket.number}", tg.api.delivered(1101)[-1])
    reasons = next(c for c in calls if c.method == "editMessageReplyMarkup")
    assert reasons.buttons[0][1] == f"decr:{ticket.number}:0"
    await tg.press(1101, f"decr:{ticket.number}:1")
    history = [e.action for e in await org.service.history(ticket.number, org.service_actor)]
    assert "decline" in history

    other = await resident_ticket(tg, org, "property", "电梯坏了")  # direct: prop-a or staff
    await tg.bind(1201, "prop-a")
    assignee = (await org.service.ticket(other.number, org.service_actor)).assignee_id
    user = 1201 if assignee == org["prop-a"] else STAFF
    if user == STAFF:
        await tg.bind(STAFF, "staff-a")
    await tg.deliver()
    await tg.press(user, f"acc:{other.number}", tg.api.delivered(user)[-1])
    await tg.press(user, f"ret:{other.number}")
    assert "已退回" in (await tg.say(user, "需要物业公司配合,我这边处理不了"))[0]
    await tg.deliver()
    assert any("退回" in t for t in tg.api.texts(RESIDENT))


async def test_duty_toggles(tg: Telegram, org: Org) -> None:
    assert "休息" in (await tg.say(VOLUNTEER, "/duty"))[0]
    assert "在岗" in (await tg.say(VOLUNTEER, "/duty"))[0]


async def test_escalation_reaches_staff_and_staff_dispatch_from_the_card(
    tg: Telegram, org: Org, clock: ManualClock
) -> None:
    await tg.bind(STAFF, "staff-a")
    ticket = await resident_ticket(tg, org, "facility_repair", "下水道堵了")
    await tg.deliver()
    clock.advance(timedelta(days=2))
    assert ticket.number in await org.service.escalate_overdue()
    await tg.deliver()
    alert = next(c for c in tg.api.delivered(STAFF) if "超期" in c.text)
    assert "升级到社区" in alert.text and alert.buttons == [("查看工单", f"card:{ticket.number}")]

    assert ticket.number in (await tg.say(STAFF, "/queue"))[0]
    calls = await tg.press(STAFF, f"card:{ticket.number}")
    card = [c for c in calls if c.method == "sendMessage"][-1]
    assert "13912345678" not in card.text and card.buttons[0][1] == f"pick:{ticket.number}"
    calls = await tg.press(STAFF, f"pick:{ticket.number}")
    people = [c for c in calls if c.method == "sendMessage"][-1].buttons
    target = next(data for title, data in people if "王志强" in title)
    await tg.press(STAFF, target)
    after = await org.service.ticket(ticket.number, org.service_actor)
    assert after.assignee_id == org["vol-a3"]

    stats = (await tg.say(STAFF, "/stats"))[0]
    assert "响应率" in stats and "满意率" in stats
    health = (await tg.say(STAFF, "/health"))[0]
    assert "待发送通知" in health and "正常" in health


async def test_a_sensitive_ticket_shows_a_summary_only_until_accepted(tg: Telegram, org: Org) -> None:
    ticket = await resident_ticket(tg, org, "legal_aid", "老板拖欠工资三个月,电话 13812345678")
    await tg.bind(1301, "law-a")
    await tg.deliver()
    assigned = tg.api.delivered(1301)[-1]
    assert "拖欠工资" not in assigned.text and "接单后可见" in assigned.text and "3栋501" not in assigned.text
    calls = await tg.press(1301, f"acc:{ticket.number}", assigned)
    card = next(c for c in calls if c.method == "editMessageText")
    assert "拖欠工资" in card.text and "3栋501" in card.text
    assert "13812345678" in card.text  # the assignee reads the description as written


async def test_a_half_finished_card_conversation_survives_a_restart(
    org: Org, api: FakeBotAPI, rasa: FakeRasa, tmp_path: Path
) -> None:
    config = config_for(api, rasa.url, state_file=tmp_path / "conversations.pickle")
    first = build_application(config, org.service)
    async with first:
        tg = Telegram(first, api)
        ticket = await resident_ticket(tg, org, "facility_repair", "楼道灯坏了")
        await tg.bind(1101, "grid-a1")
        await org.service.accept(ticket.number, org["grid-a1"])
        await tg.press(1101, f"done:{ticket.number}")  # asks for the note; then the bot restarts
    await minhu_of(first).relay.rasa.close()
    second = build_application(config, org.service)
    async with second:
        tg = Telegram(second, api)
        tg.update_ids = itertools.count(1000)
        assert "已办结" in (await tg.say(1101, "换了新灯泡"))[-1]
    await minhu_of(second).relay.rasa.close()
    assert (await org.service.ticket(ticket.number, org.service_actor)).status == Status.RESOLVED
    assert rasa.received == []  # the note did not go to the assistant as a new request


async def test_a_bound_account_cannot_take_another_responders_invite(tg: Telegram, org: Org) -> None:
    """A volunteer who gets hold of a staff member's invite does not become them, and the staff member keeps
    their account; the refused code still works for the person it was made for."""
    await tg.bind(STAFF, "staff-a")
    code = await tg.minhu.store.create_invite("staff-a")
    replies = await tg.say(VOLUNTEER, f"/join {code}")  # 1001 is vol-a1 (tests/fixtures/org.yml)
    assert "已经绑定" in replies[-1] and "联系社区工作人员" in replies[-1], replies
    assert "绑定成功" not in replies[-1]
    assert (await tg.minhu.store.responder_by_contact("telegram", str(VOLUNTEER))).code == "vol-a1"
    assert (await tg.minhu.store.responder_by_contact("telegram", str(STAFF))).code == "staff-a"
    assert "只对社区工作人员" not in (await tg.say(STAFF, "/queue"))[0]  # the staff member keeps access
    assert "只对社区工作人员" in (await tg.say(VOLUNTEER, "/queue"))[0]

    unbound = await tg.minhu.store.create_invite("sw-a")  # a responder nobody is bound to yet
    assert "已经绑定" in (await tg.say(VOLUNTEER, f"/join {unbound}"))[-1]
    assert "绑定成功" in (await tg.say(1004, f"/join {unbound}"))[-1]  # still valid for its owner


async def test_a_responders_bound_account_is_not_replaced_by_another(tg: Telegram, org: Org) -> None:
    """An invite for a responder who already has a Telegram account works only from that account, until staff
    remove the binding (`minhu responders unbind`)."""
    await tg.bind(STAFF, "staff-a")
    code = await tg.minhu.store.create_invite("staff-a")
    replies = await tg.say(STRANGER, f"/join {code}")
    assert "另一个账号" in replies[-1] and "联系社区工作人员" in replies[-1], replies
    assert await tg.minhu.store.responder_by_contact("telegram", str(STRANGER)) is None
    assert (await tg.minhu.store.responder_by_contact("telegram", str(STAFF))).code == "staff-a"

    assert "绑定成功" in (await tg.say(STAFF, f"/join {code}"))[-1]  # the same account: fine
    again = await tg.minhu.store.create_invite("staff-a")
    assert await tg.minhu.store.unbind("staff-a", "telegram") == 1  # a new phone: staff unbind first
    assert "绑定成功" in (await tg.say(STRANGER, f"/join {again}"))[-1]
    assert await tg.minhu.store.responder_by_contact("telegram", str(STAFF)) is None


async def test_two_accounts_joining_one_responder_at_once_bind_only_one(tg: Telegram, org: Org) -> None:
    first = await tg.minhu.store.create_invite("sw-a")
    second = await tg.minhu.store.create_invite("sw-a")
    outcomes = await asyncio.gather(
        tg.minhu.store.redeem_invite(first, "telegram", "7001"),
        tg.minhu.store.redeem_invite(second, "telegram", "7002"),
        return_exceptions=True,
    )
    assert sorted(type(o).__name__ for o in outcomes) == ["NotAllowed", "Responder"]
    assert await tg.minhu.store.contact_of(org["sw-a"], "telegram") in ("7001", "7002")


async def test_reloading_the_org_chart_keeps_accounts_bound_with_join(tg: Telegram, org: Org) -> None:
    await tg.bind(STAFF, "staff-a")
    async with unit_of_work(org.service.sessions) as session:
        await load_org(session, parse_org(FIXTURES / "org.yml"), org.service.catalogue)
    assert (await tg.minhu.store.responder_by_contact("telegram", str(STAFF))).code == "staff-a"
    assert (await tg.minhu.store.responder_by_contact("telegram", str(VOLUNTEER))).code == "vol-a1"
