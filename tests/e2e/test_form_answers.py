"""Answers in forms (issue 13), replayed through the real Rasa server and action server as residents typed them
on the REST channel: one answer with several facts, negated urgency, long self-introductions, Traditional
characters, cancelling in a sentence, a button's title typed, thanks and goodbyes in the middle of the form.

The form's questions are compared whole, as domain.yml words them (their wording is not this test's subject)."""

from __future__ import annotations

import re
from functools import cache

import aiohttp
import yaml

from actions.texts import PRIVACY_NOTICE
from tests.e2e.conftest import REPO, Chat, Stack, resolve
from tests.e2e.test_conversations import NUMBER, tickets_of
from tickets.actors import SYSTEM
from tickets.models import Community, Grid, Status, Ticket, Urgency
from tickets.service import TicketService

LEAK = "地下车库积水 我车子都泡了 物业说排水泵坏了"  # property, long enough to need no more description
OPENED = "好的,我来帮您登记「物业服务与纠纷」方面的诉求。"
ASK_COMMUNITY = "请问您住在哪个社区?"
ASK_COMPOUND = "在哪个小区?"
CANCELLED = "好的,这次的诉求已取消,没有登记。有需要随时找我。"


@cache
def question(name: str) -> str:
    """A question the form asks with a domain response (utter_ask_<slot>)."""
    domain = yaml.safe_load((REPO / "domain.yml").read_text(encoding="utf-8"))
    return str(domain["responses"][f"utter_ask_{name}"][0]["text"])


def read_back(description: str, where: str, phone: str, urgent: bool) -> str:
    return "\n".join(
        [
            "请核对一下:",
            "类别:物业服务与纠纷",
            f"问题:{description}",
            f"地点:{where}",
            f"联系电话:{phone}",
            f"紧急程度:{'急' if urgent else '不急'}",
            "没问题的话请点“确认提交”。",
        ]
    )


async def _only_ticket(core: TicketService, sender: str) -> Ticket:
    [ticket] = await tickets_of(core, sender)
    return ticket


async def _place(core: TicketService, ticket: Ticket) -> tuple[str, str | None]:
    async with core.sessions() as session:
        community = await session.get_one(Community, ticket.community_id)
        grid = await session.get(Grid, ticket.grid_id) if ticket.grid_id else None
    return community.name, grid.name if grid else None


async def test_one_answer_with_the_community_and_the_compound(
    stack: Stack, http: aiohttp.ClientSession, core: TicketService
) -> None:
    chat = Chat(http, stack, "facts-1")
    await chat.say(LEAK)
    assert chat.text == f"{PRIVACY_NOTICE}\n{OPENED}\n{ASK_COMMUNITY}"
    await chat.say("我住锦江那边的金色雅园")  # community and compound: the address comes next
    assert chat.text == question("address")
    await chat.say("5栋1楼")
    assert chat.text == question("phone")
    await chat.say("13912345678")
    assert chat.text == question("urgency")
    await chat.say("不是很急")
    assert chat.text == read_back(LEAK, "锦江社区 金色雅园 5栋1楼", "139****5678", urgent=False)
    await chat.say("确认")
    assert chat.text.startswith("已受理,工单号 MH-")
    ticket = await _only_ticket(core, chat.sender)
    assert ticket.urgency == Urgency.NORMAL and ticket.address == "金色雅园 5栋1楼"
    assert ticket.contact_phone == "+8613912345678"
    assert (await _place(core, ticket))[0] == "锦江社区"


async def test_an_answer_to_another_question_fills_that_one(
    stack: Stack, http: aiohttp.ClientSession, core: TicketService
) -> None:
    chat = Chat(http, stack, "facts-2")
    await chat.say(LEAK)
    await chat.say("安居社区")
    assert chat.text == ASK_COMPOUND
    await chat.say("5栋1楼")  # the building, not a compound: the compound is asked again
    assert chat.text == ASK_COMPOUND
    await chat.say("幸福家园")
    assert chat.text == question("phone")  # the address is known already
    await chat.say("電話是13912345678 不算太急")  # the phone and the urgency at once
    assert chat.text == read_back(LEAK, "安居社区 幸福家园 5栋1楼", "139****5678", urgent=False)
    await chat.say("确认提交")
    ticket = await _only_ticket(core, chat.sender)
    assert ticket.urgency == Urgency.NORMAL and ticket.address == "幸福家园 5栋1楼"
    assert await _place(core, ticket) == ("安居社区", "安居第二网格")


async def test_a_long_self_introduction_is_a_request_and_prefills_the_form(
    stack: Stack, http: aiohttp.ClientSession, core: TicketService
) -> None:
    chat = Chat(http, stack, "intro-1")
    text = "我叫王秀英 今年78了 电话13812345678 住在安居苑5栋302 我家厨房水管爆了…"
    await chat.say(text)
    # Not a goodbye: the request is opened with everything it said, only the urgency is asked.
    opened = re.fullmatch(
        rf"{re.escape(PRIVACY_NOTICE)}\n好的,我来帮您登记「(.+)」方面的诉求。\n{re.escape(question('urgency'))}",
        chat.text,
    )
    assert opened, chat.text
    await chat.say("急死了 水还在流")
    assert "地点:安居社区 安居苑 5栋302" in chat.text.splitlines()
    assert "联系电话:138****5678" in chat.text.splitlines() and "紧急程度:急" in chat.text.splitlines()
    await chat.say("确认")
    ticket = await _only_ticket(core, chat.sender)
    assert (
        ticket.address == "安居苑 5栋302" and ticket.urgency == Urgency.URGENT
    )  # 78 is an age, not a building
    assert await _place(core, ticket) == ("安居社区", "安居第一网格")


async def test_another_self_introduction_with_thanks_at_the_end(
    stack: Stack, http: aiohttp.ClientSession, core: TicketService
) -> None:
    chat = Chat(http, stack, "intro-2")
    await chat.say(
        "你好 我姓张 今年八十二了 住幸福家园3栋2单元501 电话13971112222 楼道的灯坏了好几天 晚上看不见 谢谢你们"
    )
    assert chat.text.endswith(f"\n{question('urgency')}"), chat.text
    await chat.say("不着急 慢慢来")
    assert "地点:安居社区 幸福家园 3栋2单元501" in chat.text.splitlines()
    assert "紧急程度:不急" in chat.text.splitlines()


async def test_traditional_answers_in_the_request_form(
    stack: Stack, http: aiohttp.ClientSession, core: TicketService
) -> None:
    chat = Chat(http, stack, "trad-form")
    await chat.say(LEAK)
    await chat.say("安居社區")
    assert chat.text == ASK_COMPOUND
    await chat.say("幸福家園")
    assert chat.text == question("address")
    await chat.say("2棟")
    await chat.say("１３９１２３４５６７８")  # full-width digits
    assert chat.text == question("urgency")
    await chat.say("不著急")
    assert chat.text == read_back(LEAK, "安居社区 幸福家园 2栋", "139****5678", urgent=False)
    await chat.say("確認")
    assert chat.text.startswith("已受理,工单号 MH-")
    ticket = await _only_ticket(core, chat.sender)
    assert await _place(core, ticket) == ("安居社区", "安居第二网格")  # the compound found its grid


async def _resolved(chat: Chat, core: TicketService) -> Ticket:
    """The chat's request, registered, accepted and resolved: 回访 can start."""
    await chat.say(LEAK)
    await chat.answer_form()
    return await resolve(core, await _only_ticket(core, chat.sender), "排水泵已更换")


async def test_traditional_answers_in_the_feedback_form(
    stack: Stack, http: aiohttp.ClientSession, core: TicketService
) -> None:
    chat = Chat(http, stack, "trad-feedback")
    ticket = await _resolved(chat, core)
    await chat.say("我來評價一下")
    assert chat.text.endswith(question("fb_contacted"))
    await chat.say("聯繫過了")
    assert chat.text == question("fb_solved")
    await chat.say("解決了")
    assert chat.text == question("fb_rating")
    await chat.say("滿意")
    assert "谢谢您的评价" in chat.text
    rated = await core.ticket(ticket.number, SYSTEM)
    assert rated.status == Status.CLOSED and rated.rating == "satisfied"


async def test_cancelling_in_a_sentence(
    stack: Stack, http: aiohttp.ClientSession, core: TicketService
) -> None:
    chat = Chat(http, stack, "cancel-sentence")
    await chat.say(LEAK)
    await chat.say("安居社区")
    assert chat.text == ASK_COMPOUND
    await chat.say("算了 我还是自己找物业吧 不用登记了")
    assert chat.text == CANCELLED
    assert await tickets_of(core, chat.sender) == []
    # The next request starts afresh: nothing of the cancelled one is kept.
    await chat.say(LEAK)
    assert chat.text == f"{OPENED}\n{ASK_COMMUNITY}"


async def test_cancelling_at_the_confirmation_in_traditional(
    stack: Stack, http: aiohttp.ClientSession, core: TicketService
) -> None:
    chat = Chat(http, stack, "cancel-confirm")
    await chat.say(LEAK)
    await chat.answer_form(until="请核对")
    await chat.say("不用登記了 謝謝")
    assert chat.text == CANCELLED
    assert await tickets_of(core, chat.sender) == []


async def test_one_feedback_answer_answers_every_question_it_speaks_of(
    stack: Stack, http: aiohttp.ClientSession, core: TicketService
) -> None:
    chat = Chat(http, stack, "feedback-in-one")
    ticket = await _resolved(chat, core)
    await chat.say("我来评价一下")
    assert chat.text.endswith(question("fb_contacted"))
    await chat.say("联系过了 但是没解决")
    assert chat.text == question("fb_rating")  # 问题解决了吗 is not asked again
    await chat.say("不满意")
    reopened = await core.ticket(ticket.number, SYSTEM)
    assert (reopened.contacted, reopened.solved, reopened.rating) == (True, False, "unsatisfied")
    assert reopened.status != Status.CLOSED and "已重新办理" in chat.text


async def test_typing_the_titles_of_the_status_buttons(
    stack: Stack, http: aiohttp.ClientSession, core: TicketService
) -> None:
    chat = Chat(http, stack, "titles")
    await chat.say(LEAK)
    number = NUMBER.search(await chat.answer_form())
    assert number
    await chat.say(f"查一下 {number.group(0)}")
    assert chat.buttons == ["撤销这个诉求"]  # nothing was asked, so nothing to "continue" (test_flows)
    await chat.say("撤销这个诉求")
    assert chat.text == f"好的,工单 {number.group(0)} 已撤销。有需要随时再找我们。"
    assert (await core.ticket(number.group(0), SYSTEM)).status == Status.CANCELLED


async def test_thanks_and_goodbye_in_the_middle_of_the_form(
    stack: Stack, http: aiohttp.ClientSession, core: TicketService
) -> None:
    chat = Chat(http, stack, "smalltalk")
    await chat.say(LEAK)
    await chat.say("谢谢啦")
    assert chat.text == f"不客气!还差几个问题就登记好了。\n{ASK_COMMUNITY}"
    assert chat.buttons == ["安居社区", "锦江社区"]
    await chat.say("安居社区")
    await chat.say("拜拜")
    assert chat.text == (
        "好的,您先忙。这次的诉求还没有登记完,方便的时候回来接着回答就行;不想登记了可以说“取消”。\n"
        + ASK_COMPOUND
    )
    await chat.say("安居苑")
    assert chat.text == question("address")
    await chat.say("多谢了")
    assert chat.text == f"不客气!还差几个问题就登记好了。\n{question('address')}"
    reply = await chat.answer_form()
    assert reply.startswith("已受理,工单号 MH-")
    ticket = await _only_ticket(core, chat.sender)
    assert await _place(core, ticket) == ("安居社区", "安居第一网格")
    assert ticket.address == "安居苑 3栋2单元501"
