"""Chinese conversations through the real Rasa server and action server, checked on the database."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest
from sqlalchemy import select

from tests.e2e.conftest import Chat, Stack
from tickets.actors import SYSTEM
from tickets.models import Resident, Responder, Status, Ticket
from tickets.privacy import mask_name
from tickets.service import TicketService

NUMBER = re.compile(r"MH-\d{8}-\d{4}")

# One full request per service category (certificate goes through the guide's offer first).
REQUESTS = {
    "eldercare": "隔壁婆婆一个人住 腿脚不方便 想请志愿者每周上门帮她打扫卫生",
    "property": "地下车库积水 我车子都泡了 物业说排水泵坏了",
    "legal_aid": "被电动车撞了 对方不赔医药费 想请个律师",
    "neighbor_dispute": "邻居把鞋柜纸箱全堆在楼道里 消防通道都堵了 说了还骂人",
    "environment": "工地半夜还在施工 打桩机咚咚响 伢睡不着觉",
    "facility_repair": "窨井盖被车压碎了 就在后湖大道公交站旁边",
    "social_assistance": "失业了 冇收入 房贷都还不上 家里揭不开锅了 请社区帮帮忙",
}


async def tickets_of(core: TicketService, sender: str) -> list[Ticket]:
    async with core.sessions() as session:
        resident = await session.scalar(select(Resident).where(Resident.channel_id == f"web:{sender}"))
        if resident is None:
            return []
    return list(await core.tickets_of_resident(resident.id, limit=50))


@pytest.mark.parametrize("category", sorted(REQUESTS))
async def test_a_full_request_per_category(
    stack: Stack, http: aiohttp.ClientSession, core: TicketService, category: str
) -> None:
    chat = Chat(http, stack, f"cat-{category}")
    await chat.say(REQUESTS[category])
    assert "个人信息说明" in chat.text  # a first-time resident is told what is stored, once
    if "哪个社区" in chat.text:
        assert chat.buttons == ["安居社区", "锦江社区"]
    reply = await chat.answer_form()
    assert reply.startswith("已受理,工单号 MH-") and "前有人联系您" in reply
    number = NUMBER.search(reply)
    assert number
    [ticket] = await tickets_of(core, chat.sender)
    assert ticket.number == number.group(0) and ticket.category == category
    assert ticket.contact_phone == "+8613912345678" and ticket.community_id is not None
    if ticket.status == Status.CREATED:
        assert "人工派单" in reply and "已派给" not in reply
    elif ticket.assignee_id:
        assert "已派给" in reply
    else:
        assert "已推送给附近的党员志愿者" in reply

    # Second request: the home and phone are remembered, the notice is not repeated.
    await chat.say("小区外面路上的下水道盖子冇得了 用一根树枝插着提醒")
    assert "个人信息说明" not in chat.text and "哪个社区" not in chat.text


async def test_certificate_is_answered_without_a_ticket_then_on_request(
    stack: Stack, http: aiohttp.ClientSession, core: TicketService
) -> None:
    chat = Chat(http, stack, "cert")
    await chat.say("我要开个居住证明 要带什么材料")
    assert "居住情况证明" in chat.text and "本人身份证原件" in chat.text
    assert "需要,帮我登记" in chat.buttons
    assert await tickets_of(core, chat.sender) == []
    await chat.say("/affirm")
    reply = await chat.answer_form({"具体说说": "房东不配合,我需要居住证明给孩子办入学,想请社区帮忙"})
    [ticket] = await tickets_of(core, chat.sender)
    assert ticket.category == "certificate" and ticket.number in reply


async def test_abolished_certificate_and_consultation_open_no_ticket(
    stack: Stack, http: aiohttp.ClientSession, core: TicketService
) -> None:
    chat = Chat(http, stack, "guide")
    await chat.say("开无犯罪记录证明去哪里开")
    assert "派出所" in chat.text
    await chat.say("/deny")
    assert "还有其他需要" in chat.text
    await chat.say("低保怎么申请 要什么材料")
    assert "低保以家庭为单位申请" in chat.text and "需要,帮我登记" in chat.buttons
    assert await tickets_of(core, chat.sender) == []


async def test_correcting_the_phone_at_the_confirmation(
    stack: Stack, http: aiohttp.ClientSession, core: TicketService
) -> None:
    chat = Chat(http, stack, "correct")
    await chat.say("工地半夜还在施工 打桩机咚咚响 伢睡不着觉")
    await chat.answer_form({"急不急": "急", "几栋": "跳过"}, until="请核对")
    assert "139****5678" in chat.text and "修改电话" in chat.buttons
    await chat.say("修改电话")
    assert "联系电话" in chat.text
    await chat.say("13887654321")
    assert "138****4321" in chat.text
    await chat.say("确认")
    [ticket] = await tickets_of(core, chat.sender)
    assert ticket.contact_phone == "+8613887654321" and ticket.urgency == "urgent"


async def test_cancel_inside_the_form_and_cancel_a_ticket(
    stack: Stack, http: aiohttp.ClientSession, core: TicketService
) -> None:
    chat = Chat(http, stack, "cancel")
    await chat.say("邻居把鞋柜纸箱全堆在楼道里 消防通道都堵了 说了还骂人")
    await chat.say("算了 不办了")
    assert "已取消" in chat.text
    assert await tickets_of(core, chat.sender) == []

    await chat.say("地下车库积水 我车子都泡了 物业说排水泵坏了")
    reply = await chat.answer_form()
    number = NUMBER.search(reply)
    assert number
    await chat.say(f"查一下 {number.group(0)}")
    assert number.group(0) in chat.text and "撤销这个诉求" in chat.buttons
    await chat.say("/deny")
    assert "已撤销" in chat.text
    assert (await core.ticket(number.group(0), SYSTEM)).status == Status.CANCELLED


async def test_status_query_own_tickets_only(
    stack: Stack, http: aiohttp.ClientSession, core: TicketService
) -> None:
    alice, eve = Chat(http, stack, "status-a"), Chat(http, stack, "status-e")
    await alice.say("窨井盖被车压碎了 就在后湖大道公交站旁边")
    number = NUMBER.search(await alice.answer_form())
    assert number
    await alice.say("我报的事情现在到哪一步了")
    assert number.group(0) in alice.text and Status.DISPATCHED.label in alice.text
    assert "刘*" in alice.text and "刘洋" not in alice.text  # the grid worker, masked
    await eve.say(f"查询进度 {number.group(0)}")
    assert "没有找到" in eve.text and "窨井盖" not in eve.text and "刘" not in eve.text


async def test_status_query_in_the_middle_of_the_form(
    stack: Stack, http: aiohttp.ClientSession, core: TicketService
) -> None:
    chat = Chat(http, stack, "midform")
    await chat.say("楼上养鸽子 鸽子屎落得我家窗台上到处都是")
    assert "哪个社区" in chat.text
    await chat.say("查进度 工单号是MH-20261120-0033")
    assert "没有找到" in chat.text and "哪个社区" in chat.text  # answered, then the form asks again
    reply = await chat.answer_form()
    assert "已受理" in reply and len(await tickets_of(core, chat.sender)) == 1


async def test_unsatisfied_feedback_reopens(
    stack: Stack, http: aiohttp.ClientSession, core: TicketService
) -> None:
    chat = Chat(http, stack, "feedback")
    await chat.say("窨井盖被车压碎了 就在后湖大道公交站旁边")
    await chat.answer_form()
    [ticket] = await tickets_of(core, chat.sender)
    assert ticket.assignee_id is not None
    await core.accept(ticket.number, ticket.assignee_id)
    await core.resolve(ticket.number, ticket.assignee_id, "已联系市政更换井盖")
    await chat.say("修是修了 但是第二天又坏了 不满意")  # the rating in the message is kept
    assert "联系过您吗" in chat.text and chat.buttons == ["联系过", "没有联系"]
    await chat.say("联系过")
    assert "解决了吗" in chat.text and chat.buttons == ["解决了", "没有解决"]
    await chat.say("没有解决")
    assert "重新办理" in chat.text
    reopened = await core.ticket(ticket.number, SYSTEM)
    assert reopened.reopen_count == 1 and reopened.status in (Status.CREATED, Status.DISPATCHED)
    assert reopened.rating == "unsatisfied"


async def test_out_of_scope_falls_back_with_the_categories(stack: Stack, http: aiohttp.ClientSession) -> None:
    chat = Chat(http, stack, "oos")
    await chat.say("你觉得明天股票会涨吗")
    assert "居家养老" in chat.buttons and "转人工" in chat.buttons


async def test_traditional_chinese(stack: Stack, http: aiohttp.ClientSession, core: TicketService) -> None:
    chat = Chat(http, stack, "trad")
    await chat.say("鄰居把鞋櫃紙箱全堆在樓道裡 消防通道都堵了 說了還罵人")
    reply = await chat.answer_form()
    [ticket] = await tickets_of(core, chat.sender)
    assert ticket.number in reply and ticket.category == "neighbor_dispute"


async def test_handoff_tells_who_will_reply(
    stack: Stack, http: aiohttp.ClientSession, core: TicketService
) -> None:
    chat = Chat(http, stack, "handoff")
    await chat.say("停车费一个月收三百 太贵了 物业也不公示")
    await chat.answer_form()
    await chat.say("转人工")
    assert "社区工作人员周*" in chat.text
    [latest, *_] = await tickets_of(core, chat.sender)
    assert latest.intent == "human_handoff" and "停车费" in latest.text


async def test_fifty_concurrent_residents(
    stack: Stack, http: aiohttp.ClientSession, core: TicketService
) -> None:
    texts = list(REQUESTS.values())

    async def one(i: int) -> str:
        chat = Chat(http, stack, f"crowd-{i}")
        await chat.say(texts[i % len(texts)])
        return await chat.answer_form({"联系电话": f"139{i:08d}"})

    replies = await asyncio.gather(*(one(i) for i in range(50)))
    numbers = [m.group(0) for r in replies if (m := NUMBER.search(r))]
    assert len(numbers) == 50 and len(set(numbers)) == 50
    async with core.sessions() as session:
        rows = (
            await session.execute(
                select(Ticket.number, Resident.channel_id)
                .join(Resident, Resident.id == Ticket.resident_id)
                .where(Resident.channel_id.like("web:crowd-%"))
            )
        ).all()
    assert sorted(n for n, _ in rows) == sorted(numbers)  # every ticket stored exactly once
    assert len({c for _, c in rows}) == 50


async def test_satisfied_feedback_three_questions_thanks_by_name(
    stack: Stack, http: aiohttp.ClientSession, core: TicketService
) -> None:
    chat = Chat(http, stack, "feedback-ok")
    await chat.say("地下车库积水 我车子都泡了 物业说排水泵坏了")
    await chat.answer_form()
    [ticket] = await tickets_of(core, chat.sender)
    async with core.sessions() as session:
        staff = await session.scalar(select(Responder).where(Responder.code == "staff-a"))
        assert staff is not None
    worker = ticket.assignee_id
    if worker is None:  # everyone is at capacity after the other tests: staff dispatch by hand
        worker = staff.id
        await core.dispatch(ticket.number, staff.id, worker, "人工派单")
    async with core.sessions() as session:
        name = (await session.get_one(Responder, worker)).name
    await core.accept(ticket.number, worker)
    await core.resolve(ticket.number, worker, "排水泵已更换")
    await chat.say("给接单的党员同志点个赞")
    assert "联系过您吗" in chat.text
    await chat.say("联系过")
    await chat.say("解决了")
    assert "满意吗" in chat.text and chat.buttons == ["满意", "基本满意", "不满意"]
    await chat.say("满意")
    assert "谢谢您的评价" in chat.text and mask_name(name) in chat.text  # who resolved it, masked
    assert (await core.ticket(ticket.number, SYSTEM)).status == Status.CLOSED


BAD_INPUTS = {
    "emoji": "😀😀👍🙏",
    "control characters": "\x00\x07电梯\x1b[31m坏了\x7f",
    "SQL-looking": "'; DROP TABLE tickets; --",
    "malformed JSON": '{"sender": "x", "message": ',
    "English": "hello, the lift in my building is broken",
    "huge": "楼道灯坏了" * 1200,
    "unknown button": "/no_such_intent",
}


@pytest.mark.parametrize("kind", sorted(BAD_INPUTS))
async def test_bad_input_gets_a_polite_chinese_reply_and_the_bot_carries_on(
    stack: Stack, http: aiohttp.ClientSession, core: TicketService, kind: str
) -> None:
    chat = Chat(http, stack, f"bad-{kind.replace(' ', '-')}")
    await chat.say(BAD_INPUTS[kind])
    assert re.search(r"[\u4e00-\u9fff]", chat.text), f"no Chinese reply to {kind}: {chat.replies!r}"
    # Nothing is half-written, and the same resident can still place a request right after.
    await chat.say("取消")
    await chat.say(REQUESTS["facility_repair"])
    reply = await chat.answer_form()
    assert "已受理" in reply
    [ticket] = await tickets_of(core, chat.sender)
    assert ticket.category == "facility_repair"
