"""Issue 13, flows and wording: the hand-off of a new resident, the 回访's first question, two problems in one
message, not asking again what the resident said, the guide's answers, the status, the privacy notice."""

from __future__ import annotations

import json
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.actions import (
    ActionCheckStatus,
    ActionFallback,
    ActionHandleDeny,
    ActionHandoff,
    ActionHandoffCommunity,
    ActionStartFeedback,
    ActionStartRequest,
    ActionSubmitRequest,
)
from actions.texts import PRIVACY_NOTICE
from bot.residents import START
from tests.actions.conftest import DOMAIN_FORMS, READY, Bot, buttons, texts, tracker
from tests.conftest import count
from tickets.actors import Actor
from tickets.models import Status, Ticket


async def events_of(action: Action, t: Tracker) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The messages and every event, in order (Bot.run keeps only the last value of each slot)."""
    dispatcher = CollectingDispatcher()
    events = await action.run(dispatcher, t, {"forms": DOMAIN_FORMS})
    return dispatcher.messages, events


def payloads(messages: list[dict[str, Any]]) -> list[str]:
    return [b["payload"] for m in messages for b in m.get("buttons") or []]


# ------------------------------------------------------------------------ 1. hand-off of a new resident


async def test_a_new_resident_taps_the_community_and_reaches_a_person(bot: Bot) -> None:
    messages, slots = await bot.run(
        ActionHandoff(), tracker("我不想跟机器说话 给我找个真人", "human_handoff", sender="web:new")
    )
    assert texts(messages) == "好的,马上为您找社区工作人员。请问您住在哪个社区?点一下就为您转过去。"
    assert buttons(messages) == ["安居社区", "锦江社区"]
    # The button hands over at once: it carries the community to the hand-off itself.
    assert payloads(messages)[1] == '/human_handoff{"community": "锦江社区"}'
    assert json.loads(slots["offer"]) == {"kind": "handoff"} and slots["handoff_waiting"] is True
    tapped = [{"entity": "community", "value": "锦江社区"}]
    messages, slots = await bot.run(
        ActionHandoff(), tracker("/human_handoff", "human_handoff", sender="web:new", entities=tapped)
    )
    assert texts(messages).startswith("已为您转给社区工作人员") and slots["offer"] is None
    assert slots["handoff_waiting"] is None  # a later message the NLU cannot place is no hand-off
    ticket = await bot.service.ticket(slots["ticket_number"], Actor("system"))
    assert ticket.intent == "human_handoff" and ticket.community_id is not None
    resident = await bot.service.resident_for("web:new")
    assert resident.community_id == ticket.community_id  # remembered: asked once only


async def test_a_typed_community_after_the_question_hands_over_too(bot: Bot) -> None:
    _, asked = await bot.run(ActionHandoff(), tracker("转人工", "human_handoff", sender="web:typed"))
    messages, slots = await bot.run(
        ActionFallback(), tracker("锦江社区", "nlu_fallback", sender="web:typed", slots=asked)
    )
    assert texts(messages).startswith("已为您转给社区工作人员") and slots["ticket_number"]
    # ... whatever the NLU made of it (here a category).
    _, asked = await bot.run(ActionHandoff(), tracker("转人工", "human_handoff", sender="web:typed2"))
    messages, slots = await bot.run(
        ActionStartRequest(), tracker("我住安居", "certificate", sender="web:typed2", slots=asked)
    )
    assert texts(messages).startswith("已为您转给社区工作人员") and slots["request_next"] == "answered"


async def test_a_reply_that_names_no_community_is_asked_again(bot: Bot) -> None:
    _, asked = await bot.run(ActionHandoff(), tracker("转人工", "human_handoff", sender="web:unsure"))
    messages, slots = await bot.run(
        ActionHandoffCommunity(), tracker("就是我住的那个", "nlu_fallback", sender="web:unsure", slots=asked)
    )
    assert texts(messages) == "抱歉,没认出是哪个社区。请点一下您住的社区,马上为您转给那里的工作人员。"
    assert buttons(messages) == ["安居社区", "锦江社区"] and slots["handoff_waiting"] is True
    assert await count(bot.service, Ticket) == 0


async def test_a_new_request_ends_the_wait_for_the_community(bot: Bot) -> None:
    _, asked = await bot.run(ActionHandoff(), tracker("转人工", "human_handoff", sender="web:moved"))
    _, slots = await bot.run(
        ActionStartRequest(),
        tracker("楼下垃圾桶满了好几天没人清理", "environment", sender="web:moved", slots=asked),
    )
    assert slots["handoff_waiting"] is None and slots["request_next"] == "request"


async def test_a_community_said_earlier_in_the_conversation_is_used(bot: Bot) -> None:
    events = [{"event": "user", "text": "我是锦江社区的 有点事想找人"}, {"event": "user", "text": "转人工"}]
    messages, slots = await bot.run(
        ActionHandoff(), tracker("转人工", "human_handoff", sender="web:said", events=events)
    )
    assert texts(messages).startswith("已为您转给社区工作人员") and slots["ticket_number"]


async def test_the_hand_off_clears_the_answers_of_the_form_it_ended(bot: Bot) -> None:
    _, events = await events_of(
        ActionHandoff(),
        tracker("转人工", "human_handoff", slots={"community": "安居社区", "description": "电梯坏了三天了"}),
    )
    cleared = [e["name"] for e in events if e.get("event") == "slot" and e["value"] is None]
    assert {"community", "description"} <= set(cleared)


# ---------------------------------------------------------------------- 2. the 回访 asks its first question


async def _resolved(bot: Bot) -> str:
    _, slots = await bot.run(ActionSubmitRequest(), tracker(slots=READY))
    number = str(slots["ticket_number"])
    await bot.service.accept(number, bot.org["prop-a"])
    await bot.service.resolve(number, bot.org["prop-a"], "电梯已修好")
    return number


async def test_the_feedback_form_opens_without_empty_answers_to_validate(bot: Bot) -> None:
    await _resolved(bot)
    for text, intent in (("/feedback", "feedback"), ("去评价", "feedback")):
        _, events = await events_of(ActionStartFeedback(), tracker(text, intent))
        # Rasa validates every form slot set since the message when the form opens, an empty one too (the
        # three "请选择…" before the first question): none is set unless it held a stale answer.
        assert [e["name"] for e in events if e.get("name", "").startswith("fb_")] == ["fb_ticket"]
    _, events = await events_of(
        ActionStartFeedback(), tracker("去评价", "feedback", slots={"fb_contacted": "yes", "fb_rating": None})
    )
    assert [(e["name"], e["value"]) for e in events if e.get("name") in ("fb_contacted", "fb_rating")] == [
        ("fb_contacted", None)
    ]


async def test_a_new_request_sets_no_empty_form_slot(bot: Bot) -> None:
    _, events = await events_of(ActionStartRequest(), tracker("楼下垃圾桶满了好几天没人清理", "environment"))
    form_slots = DOMAIN_FORMS["request_form"]["required_slots"]
    assert [e for e in events if e.get("name") in form_slots and e["value"] is None] == []


# ----------------------------------------------------------------------- 3. two problems in one message

TWO = "楼下垃圾好几天没人收了 臭得很 还有门口那盏路灯也坏了一个星期"


async def test_two_problems_become_two_tickets_and_the_resident_is_told(bot: Bot) -> None:
    messages, slots = await bot.run(ActionStartRequest(), tracker(TWO, "environment"))
    said = texts(messages)
    assert "您说了两件事:「楼下垃圾好几天没人收了,臭得很」、「门口那盏路灯也坏了一个星期」。" in said
    assert slots["category"] == "environment" and slots["description"] == "楼下垃圾好几天没人收了,臭得很"
    assert json.loads(slots["offer"]) == {
        "kind": "next",
        "rest": [["facility_repair", "门口那盏路灯也坏了一个星期"]],
    }
    form = {**READY, "category": "environment", "description": slots["description"], "offer": slots["offer"]}
    messages, slots = await bot.run(ActionSubmitRequest(), tracker(slots=form))
    assert texts(messages).startswith("已受理,工单号 MH-")
    assert texts(messages).endswith("您刚才还说到「门口那盏路灯也坏了一个星期」,这件事也帮您登记吗?")
    assert buttons(messages) == ["需要,帮我登记", "不用了,谢谢"]
    messages, slots = await bot.run(ActionStartRequest(), tracker("/affirm", "affirm", slots=slots))
    assert slots["request_next"] == "request" and slots["category"] == "facility_repair"
    assert slots["description"] == "门口那盏路灯也坏了一个星期" and slots["home"] is True
    form = {**READY, "category": "facility_repair", "description": slots["description"]}
    await bot.run(ActionSubmitRequest(), tracker(slots=form))
    tickets = await bot.service.tickets_of_resident((await bot.service.resident_for("web:alice")).id)
    assert sorted(t.category for t in tickets) == ["environment", "facility_repair"]


async def test_declining_one_of_three_still_offers_the_last(bot: Bot) -> None:
    offer = json.dumps(
        {
            "kind": "guide",
            "category": "facility_repair",
            "text": "路灯坏了",
            "rest": [["property", "电梯停了"]],
        }
    )
    messages, slots = await bot.run(ActionHandleDeny(), tracker("/deny", "deny", slots={"offer": offer}))
    assert texts(messages) == "好的,这件先不登记。\n您刚才还说到「电梯停了」,这件事也帮您登记吗?"
    assert json.loads(slots["offer"]) == {
        "kind": "guide",
        "category": "property",
        "text": "电梯停了",
        "rest": [],
    }


async def test_one_problem_is_not_split(bot: Bot) -> None:
    messages, slots = await bot.run(
        ActionStartRequest(),
        tracker("我们小区院子里面的几盏路灯都不亮了 跟物业说了一个月还冇换", "facility_repair"),
    )
    assert "件事" not in texts(messages) and slots["offer"] is None


# --------------------------------------------------------------- 4. not asking again what was said


async def test_asking_for_help_in_the_question_opens_the_form_at_once(bot: Bot) -> None:
    messages, slots = await bot.run(
        ActionStartRequest(), tracker("低保怎么申请 我家里困难 能帮我办吗", "social_assistance")
    )
    said = texts(messages)
    assert "低保以家庭为单位申请" in said and "要登记吗" not in said and "帮您办理" not in said
    assert slots["request_next"] == "request" and slots["category"] == "social_assistance"
    assert buttons(messages) == []


async def test_the_canteen_is_offered_once_by_who_will_come(bot: Bot) -> None:
    messages, slots = await bot.run(ActionStartRequest(), tracker("老年食堂在哪 怎么吃饭", "eldercare"))
    [message] = messages  # one answer, one message, with its buttons
    assert message["text"].count("登记") == 2 and "志愿者" in message["text"]
    assert message["text"].endswith("\n\n需要的话,我帮您登记,请社区志愿者联系您办理。要登记吗?")
    assert "工作人员" not in message["text"]
    assert buttons(messages) == ["需要,帮我登记", "不用了,谢谢"]
    assert json.loads(slots["offer"])["category"] == "eldercare"


# -------------------------------------------------------------------------------- 5. certificates


async def test_an_abolished_certificate_says_where_and_offers_nothing(bot: Bot) -> None:
    for text in ("开无犯罪记录证明去哪里开", "给我爸开个亲属关系证明", "开无犯罪证明 能帮我办吗"):
        messages, slots = await bot.run(ActionStartRequest(), tracker(text, "certificate"))
        [message] = messages
        assert message["text"].count("不再开具") == 1 and "登记" not in message["text"]
        assert buttons(messages) == [] and slots["offer"] is None and slots["request_next"] == "answered"
    assert await count(bot.service, Ticket) == 0


async def test_the_residence_certificate_says_first_whether_it_is_needed(bot: Bot) -> None:
    messages, _ = await bot.run(ActionStartRequest(), tracker("我要开个居住证明 要带什么", "certificate"))
    [message] = messages
    text = message["text"]
    assert text.startswith("【居住情况证明】先提醒您:办理居住证、子女入学,多数已不再需要社区证明")
    assert text.index("不再需要") < text.index("确实需要的话,社区可以开具。")
    assert text.endswith("需要的话,我帮您登记,请社区工作人员联系您办理。要登记吗?")
    assert buttons(messages) == ["需要,帮我登记", "不用了,谢谢"]


async def test_which_certificate_is_asked_without_an_offer(bot: Bot) -> None:
    messages, slots = await bot.run(ActionStartRequest(), tracker("/certificate", "certificate"))
    assert texts(messages).startswith("社区目前可以开具的证明有:") and buttons(messages) == []
    assert slots["offer"] is None


# --------------------------------------------------------------------------------------- 6. status


async def test_an_offer_nobody_took_waits_and_a_status_question_has_no_continue(bot: Bot) -> None:
    form = {**READY, "category": "eldercare", "description": "想给我妈申请每周上门助浴服务"}
    _, slots = await bot.run(ActionSubmitRequest(), tracker(slots=form))
    number = slots["ticket_number"]
    ticket = await bot.service.ticket(number, Actor("system"))
    assert ticket.status == Status.DISPATCHED and ticket.assignee_id is None  # offered to volunteers
    messages, _ = await bot.run(ActionCheckStatus(), tracker("我的诉求怎么样了", "check_status"))
    assert texts(messages).startswith(f"您的工单情况:\n{number} 居家养老:等待接单,预计 ")
    assert "已派单" not in texts(messages)
    assert buttons(messages) == ["撤销这个诉求"]


async def test_a_no_thanks_after_the_status_keeps_the_ticket(bot: Bot) -> None:
    _, submitted = await bot.run(ActionSubmitRequest(), tracker(slots=READY))
    number = submitted["ticket_number"]
    _, shown = await bot.run(ActionCheckStatus(), tracker("查一下进度", "check_status"))
    messages, slots = await bot.run(ActionHandleDeny(), tracker("不用了", "deny", slots=shown))
    assert texts(messages) == "好的。还有其他需要帮忙的吗?" and slots["offer"] is None
    assert (await bot.service.ticket(number, Actor("system"))).status == Status.DISPATCHED
    # The button, or saying so, withdraws it.
    messages, _ = await bot.run(ActionHandleDeny(), tracker("那就撤销吧", "deny", slots=shown))
    assert texts(messages) == f"好的,工单 {number} 已撤销。有需要随时再找我们。"


async def test_a_dispatched_ticket_with_a_responder_stays_dispatched(bot: Bot) -> None:
    _, slots = await bot.run(ActionSubmitRequest(), tracker(slots=READY))
    messages, _ = await bot.run(ActionCheckStatus(), tracker("查一下进度", "check_status"))
    assert f"{slots['ticket_number']} 物业服务与纠纷:已派单,负责人 吴*" in texts(messages)


# --------------------------------------------------------------------------------- 7. privacy notice


def test_the_privacy_notices_say_what_is_kept_how_long_and_how_to_delete_it() -> None:
    for notice in (PRIVACY_NOTICE, START):
        for kept in ("诉求内容", "地址", "电话", "社区", "小区", "对话记录"):
            assert kept in notice, kept
        assert "对话记录在最后一次对话 30 天后删除" in notice and "满一年后,删除其中的电话和地址" in notice
        assert "提前删除" in notice and "转人工" in notice
    assert "只保存" not in PRIVACY_NOTICE
