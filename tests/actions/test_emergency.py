"""紧急求助 in the action server: after utter_emergency (the numbers, said by Rasa itself) action_emergency
offers the urgent ticket; a yes makes it (tickets.intake `emergency`), a no lets the resident go, a failing
database keeps it for the retry and says the numbers again."""

from __future__ import annotations

import json
from typing import Any

from actions.actions import (
    EMERGENCY_NO,
    EMERGENCY_YES,
    ActionEmergency,
    ActionFallback,
    ActionHandleDeny,
    ActionStartRequest,
)
from actions.runtime import RUNTIME
from tests.actions.conftest import Bot, buttons, texts, tracker
from tests.conftest import count
from tickets.actors import SYSTEM
from tickets.models import Status, Ticket, Urgency


def offered(slots: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(slots["offer"]))


async def test_the_offer_after_the_numbers(bot: Bot) -> None:
    await bot.org.resident("em", community="anju")
    t = tracker("家里煤气泄漏了好大的味道", "emergency", sender="test:em", slots={"emergency_kind": "gas"})
    messages, slots = await bot.run(ActionEmergency(), t)
    assert "马上通知社区工作人员和网格员" in texts(messages)
    assert buttons(messages) == [EMERGENCY_YES, EMERGENCY_NO]
    assert offered(slots) == {"kind": "emergency", "emergency": "gas", "text": "家里煤气泄漏了好大的味道"}
    assert await count(bot.service, Ticket) == 0  # nothing is made without a yes


async def test_an_unknown_resident_picks_the_community_on_the_yes_button(bot: Bot) -> None:
    messages, _ = await bot.run(ActionEmergency(), tracker("救命", "emergency", sender="web:new"))
    assert buttons(messages) == ["是,我住安居社区", "是,我住锦江社区", EMERGENCY_NO]
    payloads = [b["payload"] for m in messages for b in m.get("buttons") or []]
    assert payloads[0] == '/affirm{"community": "安居社区"}'


async def test_an_emergency_in_a_form_says_the_request_was_dropped(bot: Bot) -> None:
    events = [
        {"event": "user", "text": "着火了"},
        {"event": "bot", "text": "🔥 着火了请马上拨打 119!"},
        {"event": "active_loop", "name": None},
    ]
    messages, _ = await bot.run(ActionEmergency(), tracker("着火了", "emergency", events=events))
    assert texts(messages).startswith("刚才正在登记的诉求先停下了")


async def test_yes_makes_the_urgent_ticket(bot: Bot) -> None:
    await bot.org.resident("em", community="anju")
    offer = json.dumps({"kind": "emergency", "emergency": "gas", "text": "家里煤气泄漏了好大的味道"})
    messages, slots = await bot.run(
        ActionStartRequest(), tracker("/affirm", "affirm", sender="test:em", slots={"offer": offer})
    )
    assert "已通知社区工作人员周*和网格员" in texts(messages) and "119" in texts(messages)
    assert slots["request_next"] == "answered" and slots["offer"] is None
    ticket = await bot.service.ticket(slots["ticket_number"], SYSTEM)
    assert (ticket.category, ticket.urgency, ticket.status) == (
        "emergency",
        Urgency.URGENT,
        Status.DISPATCHED,
    )
    assert ticket.assignee_id == bot.org["staff-a"] and ticket.text.startswith("【燃气泄漏】")

    messages, _ = await bot.run(
        ActionStartRequest(), tracker("/affirm", "affirm", sender="test:em", slots={"offer": offer})
    )
    assert "已经在处理" in texts(messages) and await count(bot.service, Ticket) == 1


async def test_yes_with_the_community_for_a_new_resident(bot: Bot) -> None:
    offer = json.dumps({"kind": "emergency", "emergency": "missing", "text": "孩子不见了"})
    entities = [{"entity": "community", "value": "锦江社区"}]
    t = tracker("", "affirm", sender="web:newcomer", slots={"offer": offer}, entities=entities)
    messages, slots = await bot.run(ActionStartRequest(), t)
    ticket = await bot.service.ticket(slots["ticket_number"], SYSTEM)
    assert ticket.assignee_id == bot.org["staff-j"] and "110" in texts(messages)


async def test_yes_without_a_community_asks_for_it_and_keeps_the_offer(bot: Bot) -> None:
    offer = json.dumps({"kind": "emergency", "emergency": "fire", "text": "着火了"})
    messages, slots = await bot.run(
        ActionStartRequest(), tracker("是", "affirm", sender="web:nowhere", slots={"offer": offer})
    )
    assert "社区" in texts(messages) and "119" in texts(messages)
    assert buttons(messages) == ["我住安居社区", "我住锦江社区"] and "offer" not in slots


async def test_no_lets_the_resident_go(bot: Bot) -> None:
    offer = json.dumps({"kind": "emergency", "emergency": "medical", "text": "我妈晕倒了"})
    messages, slots = await bot.run(ActionHandleDeny(), tracker("不用了", "deny", slots={"offer": offer}))
    assert "请注意安全" in texts(messages) and slots == {"offer": None}
    assert await count(bot.service, Ticket) == 0


async def test_a_failing_database_keeps_the_emergency_for_the_retry(bot: Bot) -> None:
    await bot.org.resident("em", community="anju")
    offer = json.dumps({"kind": "emergency", "emergency": "medical", "text": "爹爹晕倒了叫不醒"})
    real = bot.service.emergency

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("database down")

    bot.service.emergency = broken  # type: ignore[method-assign]
    try:
        messages, _ = await bot.run(
            ActionStartRequest(), tracker("/affirm", "affirm", sender="test:em", slots={"offer": offer})
        )
    finally:
        bot.service.emergency = real  # type: ignore[method-assign]
    assert "120" in texts(messages) and "恢复后会自动转给社区" in texts(messages)
    [saved] = RUNTIME.pending.all()
    assert (saved.category, saved.urgency) == ("emergency", "urgent")
    [intake] = await RUNTIME.pending.replay(bot.service)
    assert intake.ticket.category == "emergency" and intake.ticket.assignee_id == bot.org["staff-a"]


async def test_the_emergency_category_is_never_a_button(bot: Bot) -> None:
    messages, _ = await bot.run(ActionFallback(), tracker("今天股票涨不涨", "out_of_scope"))
    assert "居家养老" in buttons(messages) and "紧急求助" not in buttons(messages)
