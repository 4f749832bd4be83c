"""Issue 13 (flows and what the bot says), replayed through the real Rasa server and action server: a new
resident's hand-off, the 回访's first question, two problems in one message, not asking again what the resident
said, the guide's answers, the status of an offer nobody took, and the privacy notice."""

from __future__ import annotations

import re

import aiohttp

from actions.texts import PRIVACY_NOTICE
from tests.e2e.conftest import Chat, Stack, resolve
from tests.e2e.test_conversations import NUMBER, tickets_of
from tickets.actors import SYSTEM
from tickets.guide import Guide
from tickets.models import Status
from tickets.service import TicketService

GUIDE = Guide.load()
HANDED_OVER = re.compile(
    r"已为您转给社区工作人员(\S\*+)?,工单号 MH-\d{8}-\d{4},预计 \S+ \d\d:\d\d 前会联系您。"
    r"刚才的对话内容已一并转交,不用再说一遍。"
)
ASK_COMMUNITY = "好的,马上为您找社区工作人员。请问您住在哪个社区?点一下就为您转过去。"


def messages(chat: Chat) -> list[str]:
    return [str(r.get("text") or "") for r in chat.replies]


def payloads(chat: Chat) -> list[str]:
    return [b["payload"] for r in chat.replies for b in r.get("buttons") or []]


async def test_a_new_resident_reaches_a_person_by_tapping_the_community(
    stack: Stack, http: aiohttp.ClientSession, core: TicketService
) -> None:
    chat = Chat(http, stack, "flow-handoff-tap")
    await chat.say("我不想跟机器说话 给我找个真人")
    assert messages(chat) == [ASK_COMMUNITY] and chat.buttons == ["安居社区", "锦江社区"]
    await chat.say(payloads(chat)[1])  # 锦江社区
    [reply] = messages(chat)
    assert HANDED_OVER.fullmatch(reply), reply
    [ticket] = await tickets_of(core, chat.sender)
    assert ticket.intent == "human_handoff" and ticket.number in reply
    # The community is remembered: the next 转人工 goes straight through.
    await chat.say("转人工")
    assert HANDED_OVER.fullmatch(chat.text), chat.text


async def test_a_new_resident_reaches_a_person_by_typing_the_community(
    stack: Stack, http: aiohttp.ClientSession, core: TicketService
) -> None:
    chat = Chat(http, stack, "flow-handoff-type")
    await chat.say("转人工")
    assert messages(chat) == [ASK_COMMUNITY]
    await chat.say("锦江社区")
    assert len(messages(chat)) == 1, messages(chat)  # handed over, with no "没太明白" before it
    [reply] = messages(chat)
    assert HANDED_OVER.fullmatch(reply), reply
    assert len(await tickets_of(core, chat.sender)) == 1


async def test_a_community_said_before_the_hand_off_is_used(
    stack: Stack, http: aiohttp.ClientSession, core: TicketService
) -> None:
    chat = Chat(http, stack, "flow-handoff-said")
    await chat.say("你好 我是安居社区的居民")
    await chat.say("转人工")
    assert HANDED_OVER.fullmatch(chat.text), chat.text


async def _resolved_ticket(chat: Chat, core: TicketService) -> str:
    await chat.say("窨井盖被车压碎了 就在后湖大道公交站旁边")
    await chat.answer_form()
    [ticket] = await tickets_of(core, chat.sender)
    await resolve(core, ticket, "已联系市政更换井盖")
    return ticket.number


async def test_the_feedback_starts_with_its_first_question_tapped_or_typed(
    stack: Stack, http: aiohttp.ClientSession, core: TicketService
) -> None:
    for how, say in (("tap", "/feedback"), ("type", "去评价")):
        chat = Chat(http, stack, f"flow-feedback-{how}")
        number = await _resolved_ticket(chat, core)
        await chat.say("查一下进度")
        assert chat.buttons == ["去评价"]
        await chat.say(say)
        assert messages(chat) == [
            f"谢谢您愿意评价工单 {number}(公共设施维修),一共三个小问题。",
            "1. 工作人员联系过您吗?",
        ]
        assert chat.buttons == ["联系过", "没有联系"]
        await chat.say("联系过")
        assert messages(chat) == ["2. 问题解决了吗?"]


async def test_a_new_request_asks_its_first_question_without_errors(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    chat = Chat(http, stack, "flow-first-question")
    await chat.say("工地半夜还在施工 打桩机咚咚响 伢睡不着觉")
    assert messages(chat) == [
        PRIVACY_NOTICE,
        "好的,我来帮您登记「环境卫生」方面的诉求。",
        "请问您住在哪个社区?",
    ]


async def test_two_problems_in_one_message_become_two_tickets(
    stack: Stack, http: aiohttp.ClientSession, core: TicketService
) -> None:
    chat = Chat(http, stack, "flow-two")
    await chat.say("楼下垃圾好几天没人收了 臭得很 还有门口那盏路灯也坏了一个星期")
    said = {"environment": "楼下垃圾好几天没人收了,臭得很", "facility_repair": "门口那盏路灯也坏了一个星期"}
    first = "environment" if "「环境卫生」" in chat.text else "facility_repair"
    second = "facility_repair" if first == "environment" else "environment"
    assert messages(chat)[0] == (
        f"您说了两件事:「{said[first]}」、「{said[second]}」。不同的事由不同的人负责,我们分开登记,一件一件来:"
        f"先登记「{said[first]}」,登记好再问您下一件。"
    )
    await chat.answer_form()
    assert messages(chat)[-1] == f"您刚才还说到「{said[second]}」,这件事也帮您登记吗?"
    assert chat.buttons == ["需要,帮我登记", "不用了,谢谢"]
    await chat.say("/affirm")
    reply = await chat.answer_form()
    assert "已受理" in reply and "还说到" not in reply
    tickets = await tickets_of(core, chat.sender)
    assert sorted((t.category, t.text) for t in tickets) == sorted(said.items())


async def test_asking_for_help_in_the_question_is_not_asked_again(
    stack: Stack, http: aiohttp.ClientSession, core: TicketService
) -> None:
    chat = Chat(http, stack, "flow-help")
    await chat.say("低保怎么申请 我家里困难 能帮我办吗")
    entry = GUIDE.lookup("低保")
    assert entry is not None
    assert messages(chat) == [
        entry.answer,
        PRIVACY_NOTICE,
        "好的,我来帮您登记「社会救助」方面的诉求。",
        "请问您住在哪个社区?",
    ]
    reply = await chat.answer_form()
    [ticket] = await tickets_of(core, chat.sender)
    assert ticket.category == "social_assistance" and ticket.number in reply


async def test_the_canteen_is_offered_once(stack: Stack, http: aiohttp.ClientSession) -> None:
    chat = Chat(http, stack, "flow-canteen")
    await chat.say("老年食堂在哪里 怎么去吃饭")
    entry = GUIDE.lookup("老年食堂")
    assert entry is not None
    assert messages(chat) == [f"{entry.answer}\n\n需要的话,我帮您登记,请社区志愿者联系您办理。要登记吗?"]
    assert chat.buttons == ["需要,帮我登记", "不用了,谢谢"]


async def test_certificates_answer_once_without_contradiction(
    stack: Stack, http: aiohttp.ClientSession, core: TicketService
) -> None:
    chat = Chat(http, stack, "flow-cert")
    for text, name in (
        ("开无犯罪记录证明去哪里开", "无犯罪记录证明"),
        ("给我爸开个亲属关系证明", "亲属关系证明"),
    ):
        await chat.say(text)
        [entry] = [e for e in GUIDE.entries if e.name == name]
        assert messages(chat) == [entry.answer] and chat.buttons == []  # where to go; nothing to offer
        await chat.say("/affirm")  # a yes to nothing offered opens nothing
        assert "「证明开具」" not in chat.text
    await chat.say("我要开个居住证明 要带什么材料")
    entry = GUIDE.lookup("居住证明")
    assert entry is not None
    assert messages(chat) == [f"{entry.answer}\n\n需要的话,我帮您登记,请社区工作人员联系您办理。要登记吗?"]
    assert messages(chat)[0].startswith("【居住情况证明】先提醒您:")
    assert await tickets_of(core, chat.sender) == []


async def test_an_offer_nobody_took_waits_for_a_taker(
    stack: Stack, http: aiohttp.ClientSession, core: TicketService
) -> None:
    chat = Chat(http, stack, "flow-status")
    await chat.say("隔壁婆婆一个人住 腿脚不方便 想请志愿者每周上门帮她打扫卫生")
    await chat.answer_form()
    [ticket] = await tickets_of(core, chat.sender)
    assert ticket.status == Status.DISPATCHED and ticket.assignee_id is None  # offered to volunteers
    await chat.say("我的诉求办得怎么样了")
    [reply] = messages(chat)
    assert re.fullmatch(
        rf"您的工单情况:\n{ticket.number} 居家养老:等待接单,预计 \S+ \d\d:\d\d 前联系您", reply
    ), reply
    assert chat.buttons == ["撤销这个诉求"]
    assert NUMBER.search(reply)


async def test_a_no_thanks_after_the_status_does_not_withdraw_the_ticket(
    stack: Stack, http: aiohttp.ClientSession, core: TicketService
) -> None:
    chat = Chat(http, stack, "flow-no-thanks")
    await chat.say("地下车库积水 我车子都泡了 物业说排水泵坏了")
    await chat.answer_form()
    [ticket] = await tickets_of(core, chat.sender)
    await chat.say("查一下我的工单")
    assert chat.buttons == ["撤销这个诉求"]
    await chat.say("不用了")
    assert messages(chat) == ["好的。还有其他需要帮忙的吗?"]
    assert (await core.ticket(ticket.number, SYSTEM)).status == ticket.status
    await chat.say("查一下我的工单")
    await chat.say("/deny")  # the button
    assert messages(chat) == [f"好的,工单 {ticket.number} 已撤销。有需要随时再找我们。"]
