"""The custom actions over the real ticket core."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import update

from actions.actions import (
    ActionAskCommunity,
    ActionAskConfirm,
    ActionCheckStatus,
    ActionFallback,
    ActionHandleDeny,
    ActionHandoff,
    ActionStartFeedback,
    ActionStartRequest,
    ActionSubmitFeedback,
    ActionSubmitRequest,
    ValidateFeedbackForm,
    ValidateRequestForm,
)
from actions.runtime import ORG_DATA_TTL_S, RUNTIME
from actions.texts import PRIVACY_NOTICE, SAVED_FOR_RETRY_TEXT
from tests.actions.conftest import READY, Bot, buttons, texts, tracker
from tests.conftest import count
from tickets.actors import Actor
from tickets.clock import ManualClock
from tickets.models import Community, Responder, Status, Ticket


async def submit(bot: Bot, sender: str = "web:alice", **slots: Any) -> tuple[str, dict[str, Any]]:
    messages, set_slots = await bot.run(
        ActionSubmitRequest(), tracker(sender=sender, slots={**READY, **slots})
    )
    return texts(messages), set_slots


async def validate(
    bot: Bot, slot: str, value: Any, slots: dict[str, Any] | None = None, form: str = "request_form"
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    action = ValidateRequestForm() if form == "request_form" else ValidateFeedbackForm()
    t = tracker(
        str(value),
        "affirm",
        slots={**(slots or {}), slot: value, "requested_slot": slot},
        events=[{"event": "user", "text": str(value)}, {"event": "slot", "name": slot, "value": value}],
        form=form,
    )
    return await bot.run(action, t)


# ------------------------------------------------------------------------------ starting a request


async def test_a_long_request_opens_the_form_with_the_description(bot: Bot) -> None:
    messages, slots = await bot.run(
        ActionStartRequest(), tracker("我家楼上天天半夜跺脚 吵得老人睡不着", "neighbor_dispute")
    )
    assert slots["request_next"] == "request" and slots["category"] == "neighbor_dispute"
    assert slots["description"] == "我家楼上天天半夜跺脚 吵得老人睡不着"
    assert PRIVACY_NOTICE in texts(messages) and slots["privacy_told"] is True
    assert slots.get("community") is None  # a first-time resident is asked where they live


async def test_a_short_request_asks_for_more(bot: Bot) -> None:
    _, slots = await bot.run(ActionStartRequest(), tracker("电梯", "property"))
    assert slots["request_next"] == "request" and slots.get("description") is None
    assert slots["short_text"] == "电梯"
    # The answer is joined to what they said first.
    _, valid = await validate(bot, "description", "坏了三天了", {"short_text": "电梯"})
    assert valid["description"] == "电梯 坏了三天了"


async def test_entities_in_the_message_prefill_the_form(bot: Bot) -> None:
    entities = [
        {"entity": "compound", "value": "幸福家园"},
        {"entity": "phone", "value": "13971234567"},
        {"entity": "urgency", "value": "急"},
    ]
    _, slots = await bot.run(
        ActionStartRequest(),
        tracker("幸福家园楼道里电线冒火花 很急 13971234567", "property", entities=entities),
    )
    assert slots["compound"] == "幸福家园" and slots["phone"] == "+8613971234567"
    assert slots["urgency"] == "urgent"


async def test_a_known_resident_is_not_asked_again(bot: Bot) -> None:
    text, _ = await submit(bot)
    assert "已受理" in text
    messages, slots = await bot.run(
        ActionStartRequest(), tracker("楼下垃圾堆了一个星期没人清", "environment")
    )
    assert slots["community"] == "安居社区" and slots["home"] is True
    assert slots["compound"] == "-" and slots["phone"] == "+8613912345678"
    assert PRIVACY_NOTICE not in texts(messages)  # told once: the resident has consented since


async def test_certificate_is_answered_once_without_a_ticket(bot: Bot) -> None:
    messages, slots = await bot.run(ActionStartRequest(), tracker("我要开个居住证明 要带什么", "certificate"))
    said = texts(messages)
    assert "居住情况证明" in said and "本人身份证原件" in said
    assert buttons(messages) == ["需要,帮我登记", "不用了,谢谢"]
    assert slots["request_next"] == "answered" and json.loads(slots["offer"])["kind"] == "guide"
    assert await count(bot.service, Ticket) == 0
    # Abolished ones say where to go instead.
    messages, _ = await bot.run(ActionStartRequest(), tracker("开单身证明", "certificate"))
    assert "不再开具" in texts(messages)


async def test_consultation_answered_then_a_ticket_if_wanted(bot: Bot) -> None:
    messages, slots = await bot.run(
        ActionStartRequest(), tracker("低保怎么申请 需要什么材料", "social_assistance")
    )
    assert "低保以家庭为单位申请" in texts(messages) and slots["request_next"] == "answered"
    messages, slots2 = await bot.run(ActionStartRequest(), tracker("/affirm", "affirm", slots=slots))
    assert slots2["request_next"] == "request" and slots2["category"] == "social_assistance"
    assert slots2["description"] == "低保怎么申请 需要什么材料"
    # A plain request with the same words is not a question: straight to the form.
    _, slots3 = await bot.run(
        ActionStartRequest(), tracker("家里困难想申请低保 帮我登记一下", "social_assistance")
    )
    assert slots3["request_next"] == "request"


async def test_declining_the_offer(bot: Bot) -> None:
    _, slots = await bot.run(ActionStartRequest(), tracker("开无犯罪证明", "certificate"))
    messages, slots2 = await bot.run(ActionHandleDeny(), tracker("/deny", "deny", slots=slots))
    assert "还有其他需要" in texts(messages) and slots2["offer"] is None


# ------------------------------------------------------------------------------------- the form


async def test_community_buttons_come_from_the_org(bot: Bot) -> None:
    messages, _ = await bot.run(ActionAskCommunity(), tracker())
    assert buttons(messages) == ["安居社区", "锦江社区"]
    _, slots = await validate(bot, "community", "锦江")
    assert slots["community"] == "锦江社区"


async def test_two_failed_answers_explain_and_offer_a_person(bot: Bot) -> None:
    messages, slots = await validate(bot, "phone", "12345")
    assert slots["phone"] is None and "电话号码好像不对" in texts(messages)
    messages, slots = await validate(bot, "phone", "abc", {"fails": slots["fails"]})
    assert "联系电话是为了" in texts(messages) and "请社区工作人员联系我" in buttons(messages)
    _, slots = await validate(bot, "phone", "不留电话")
    assert slots["phone"] == "-"


async def test_cancel_inside_the_form_ends_it_without_a_ticket(bot: Bot) -> None:
    _, slots = await validate(bot, "community", "算了 不办了")
    assert slots["request_cancelled"] is True and slots["requested_slot"] is None
    text, _ = await submit(bot, request_cancelled=True, confirm=None)
    assert "已取消" in text and await count(bot.service, Ticket) == 0


async def test_confirmation_reads_back_and_takes_corrections(bot: Bot) -> None:
    messages, _ = await bot.run(ActionAskConfirm(), tracker(slots={**READY, "confirm": None}))
    said = texts(messages)
    assert "物业服务与纠纷" in said and "139****5678" in said and "13912345678" not in said
    assert "确认提交" in buttons(messages) and "修改电话" in buttons(messages)
    _, slots = await validate(bot, "confirm", "修改电话")
    assert slots["phone"] is None and slots["confirm"] is None
    _, slots = await validate(bot, "confirm", "电话改成13887654321")
    assert slots["phone"] == "+8613887654321" and slots["confirm"] is None
    _, slots = await validate(bot, "confirm", "修改地址")
    assert slots["community"] is None and slots["compound"] is None
    _, slots = await validate(bot, "confirm", "确认")
    assert slots["confirm"] == "yes"


async def test_urgency_words(bot: Bot) -> None:
    assert (await validate(bot, "urgency", "不急"))[1]["urgency"] == "normal"
    assert (await validate(bot, "urgency", "很急"))[1]["urgency"] == "urgent"
    assert (await validate(bot, "urgency", "urgent"))[1]["urgency"] == "urgent"  # prefilled


# ------------------------------------------------------------------------------------- submitting


async def test_direct_dispatch_names_the_responder_masked(bot: Bot) -> None:
    text, slots = await submit(bot)
    assert text.startswith("已受理,工单号 MH-20261123-0001,预计 今天 11:00 前有人联系您")
    assert "已派给吴*" in text  # the property contact of the grid
    ticket = await bot.service.ticket(slots["ticket_number"], Actor("system"))
    assert ticket.status == Status.DISPATCHED and ticket.contact_phone == "+8613912345678"


async def test_grab_dispatch_says_it_was_offered(bot: Bot) -> None:
    text, _ = await submit(bot, category="eldercare", description="想给我妈申请每周上门助浴服务")
    assert "已推送给附近的党员志愿者" in text and "已派给" not in text


async def test_nobody_on_duty_is_said_honestly(bot: Bot) -> None:
    async with bot.service.sessions() as session, session.begin():
        await session.execute(update(Responder).values(on_duty=False))
    text, slots = await submit(bot)
    assert "没有值班的工作人员" in text and "人工派单" in text and "已派给" not in text
    ticket = await bot.service.ticket(slots["ticket_number"], Actor("system"))
    assert ticket.status == Status.CREATED


async def test_duplicate_is_linked_and_limit_is_polite(bot: Bot) -> None:
    from dataclasses import replace

    bot.service.policy = replace(
        bot.service.policy, duplicate_window=timedelta(days=1), max_tickets_per_hour=2
    )
    first, _ = await submit(bot)
    again, _ = await submit(bot, description="3栋电梯坏了两天了!老人下不了楼啊")
    assert "已经反映过" in again and first.split("工单号 ")[1][:16] in again
    await submit(bot, category="environment", description="楼下垃圾桶满了好几天没人清理")
    third, _ = await submit(bot, category="facility_repair", description="小区门口路灯坏了一个月")
    assert "稍等" in third and await count(bot.service, Ticket) == 2


async def test_database_failure_saves_the_request_for_retry(bot: Bot) -> None:
    real = bot.service.sessions

    def broken() -> Any:
        raise ConnectionError("database down")

    bot.service.sessions = broken  # type: ignore[assignment]
    try:
        text, _ = await submit(bot, sender="web:bob")
    finally:
        bot.service.sessions = real
    assert text == SAVED_FOR_RETRY_TEXT
    saved = RUNTIME.pending.all()
    assert [p.channel_id for p in saved] == ["web:bob"] and saved[0].text == READY["description"]
    assert await count(bot.service, Ticket) == 0
    done = await RUNTIME.pending.replay(bot.service)
    assert len(done) == 1 and RUNTIME.pending.all() == []
    assert await count(bot.service, Ticket) == 1


# ---------------------------------------------------------------------------------- status, cancel


async def test_status_lists_own_tickets_with_masked_names(bot: Bot, clock: ManualClock) -> None:
    _, slots = await submit(bot)
    await bot.service.accept(slots["ticket_number"], bot.org["prop-a"])
    messages, _ = await bot.run(ActionCheckStatus(), tracker("我的工单到哪一步了", "check_status"))
    said = texts(messages)
    assert slots["ticket_number"] in said and "处理中" in said and "吴*" in said and "吴刚" not in said
    assert "前办结" in said


async def test_another_residents_number_is_not_found(bot: Bot) -> None:
    _, slots = await submit(bot, sender="web:alice")
    number = slots["ticket_number"]
    messages, _ = await bot.run(
        ActionCheckStatus(), tracker(f"查一下 {number}", "check_status", sender="web:eve")
    )
    said = texts(messages)
    assert "没有找到" in said and "电梯" not in said and "吴" not in said
    messages, _ = await bot.run(ActionCheckStatus(), tracker(f"查一下 {number.lower()}", "check_status"))
    assert "已派单" in texts(messages)


async def test_cancel_before_acceptance_and_refusal_after(bot: Bot) -> None:
    _, slots = await submit(bot)
    number = slots["ticket_number"]
    messages, status_slots = await bot.run(ActionCheckStatus(), tracker(f"{number} 怎么样了", "check_status"))
    assert "撤销这个诉求" in buttons(messages)
    messages, _ = await bot.run(ActionHandleDeny(), tracker("/deny", "deny", slots=status_slots))
    assert "已撤销" in texts(messages)
    assert (await bot.service.ticket(number, Actor("system"))).status == Status.CANCELLED

    _, slots = await submit(bot, category="environment", description="楼下烧烤摊油烟太大 熏得开不了窗")
    second = slots["ticket_number"]
    await bot.service.accept(second, bot.org["grid-a1"])
    messages, _ = await bot.run(ActionCheckStatus(), tracker(f"帮我撤销 {second}", "check_status"))
    assert "不能撤销" in texts(messages)
    assert (await bot.service.ticket(second, Actor("system"))).status == Status.ACCEPTED


# -------------------------------------------------------------------------------------- feedback


async def _resolved(bot: Bot) -> str:
    _, slots = await submit(bot)
    number = str(slots["ticket_number"])
    await bot.service.accept(number, bot.org["prop-a"])
    await bot.service.resolve(number, bot.org["prop-a"], "电梯已修好")
    return number


async def test_feedback_three_questions_and_thanks_by_name(bot: Bot) -> None:
    number = await _resolved(bot)
    _, slots = await bot.run(ActionStartFeedback(), tracker("我来评价一下", "feedback"))
    assert slots["request_next"] == "feedback" and slots["fb_ticket"] == number
    assert (await validate(bot, "fb_contacted", "联系过", form="feedback_form"))[1]["fb_contacted"] == "yes"
    assert (await validate(bot, "fb_solved", "没有解决", form="feedback_form"))[1]["fb_solved"] == "no"
    assert (await validate(bot, "fb_rating", "基本满意", form="feedback_form"))[1]["fb_rating"] == "basic"
    done = {"fb_ticket": number, "fb_contacted": "yes", "fb_solved": "yes", "fb_rating": "satisfied"}
    messages, _ = await bot.run(ActionSubmitFeedback(), tracker(slots=done))
    assert "吴*" in texts(messages) and "已结案" in texts(messages)
    assert (await bot.service.ticket(number, Actor("system"))).status == Status.CLOSED


async def test_unsatisfied_feedback_reopens(bot: Bot) -> None:
    number = await _resolved(bot)
    _, slots = await bot.run(ActionStartFeedback(), tracker("不满意 根本没修好", "feedback"))
    assert slots["fb_rating"] == "unsatisfied"
    done = {"fb_ticket": number, "fb_contacted": "yes", "fb_solved": "no", "fb_rating": "unsatisfied"}
    messages, _ = await bot.run(ActionSubmitFeedback(), tracker(slots=done))
    assert "重新办理" in texts(messages)
    ticket = await bot.service.ticket(number, Actor("system"))
    assert ticket.status in (Status.CREATED, Status.DISPATCHED) and ticket.reopen_count == 1


async def test_feedback_without_a_resolved_ticket(bot: Bot) -> None:
    messages, slots = await bot.run(ActionStartFeedback(), tracker("你们太慢了", "feedback"))
    assert slots["request_next"] == "answered" and "没有需要评价" in texts(messages)


# ----------------------------------------------------------------------------- hand-off, fallback


async def test_handoff_tells_who_will_reply(bot: Bot) -> None:
    await submit(bot)
    events = [
        {"event": "user", "text": "我的电话13912345678 房子的事说不清"},
        {"event": "bot", "text": "抱歉,我没太明白您的意思。"},
        {"event": "user", "text": "转人工"},
    ]
    messages, slots = await bot.run(ActionHandoff(), tracker("转人工", "human_handoff", events=events))
    assert "社区工作人员周*" in texts(messages) and "工单号 MH-" in texts(messages)
    ticket = await bot.service.ticket(slots["ticket_number"], Actor("system"))
    assert ticket.assignee_id == bot.org["staff-a"] and "139****5678" in ticket.text


async def test_handoff_of_an_unknown_resident_asks_the_community(bot: Bot) -> None:
    messages, _ = await bot.run(ActionHandoff(), tracker("转人工", "human_handoff", sender="web:new"))
    assert "社区" in texts(messages) and buttons(messages) == ["安居社区", "锦江社区"]


async def test_fallback_offers_the_categories(bot: Bot) -> None:
    messages, _ = await bot.run(ActionFallback(), tracker("今天股票涨不涨", "out_of_scope"))
    assert "12345" in texts(messages) and "居家养老" in buttons(messages) and "转人工" in buttons(messages)


async def test_a_hanging_database_still_answers_quickly(bot: Bot, monkeypatch: Any) -> None:
    import asyncio
    import time

    import actions.runtime

    async def hang(request: Any) -> Any:
        await asyncio.sleep(30)

    monkeypatch.setattr(actions.runtime, "CALL_TIMEOUT", 0.3)
    monkeypatch.setattr(bot.service, "intake", hang)
    started = time.monotonic()
    text, _ = await submit(bot, sender="web:slow")
    assert time.monotonic() - started < 3
    assert text == SAVED_FOR_RETRY_TEXT and [p.channel_id for p in RUNTIME.pending.all()] == ["web:slow"]


async def test_the_org_lists_are_read_again_after_a_minute(bot: Bot) -> None:
    start = 1000.0
    RUNTIME.monotonic = lambda: start
    try:
        await bot.run(ActionAskCommunity(), tracker())
        async with bot.service.sessions() as session, session.begin():
            await session.execute(
                update(Community).where(Community.name == "锦江社区").values(name="锦江新村社区")
            )
        messages, _ = await bot.run(ActionAskCommunity(), tracker())
        assert buttons(messages) == ["安居社区", "锦江社区"]  # within the minute: the list read before
        RUNTIME.monotonic = lambda: start + ORG_DATA_TTL_S + 1
        messages, _ = await bot.run(ActionAskCommunity(), tracker())
        assert buttons(messages) == ["安居社区", "锦江新村社区"]
    finally:
        RUNTIME.monotonic = time.monotonic
