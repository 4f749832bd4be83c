"""Answers in the request and feedback forms (issue 13, "Answers in forms"), through the validation actions over
the real ticket core: one answer gives every fact it carries and fills no question it does not answer."""

from __future__ import annotations

from actions.actions import ActionStartRequest, ValidateRequestForm
from tests.actions.conftest import Bot, texts, tracker
from tests.actions.test_actions import validate

PARKED = {"category": "property", "description": "厨房水管爆了 水流了一地"}


async def test_one_answer_fills_the_community_and_the_compound(bot: Bot) -> None:
    messages, slots = await validate(bot, "community", "我住锦江那边的金色雅园", PARKED)
    assert slots["community"] == "锦江社区" and slots["compound"] == "金色雅园"
    assert texts(messages) == ""  # nothing to complain about: the next question is the address


async def test_an_answer_to_another_question_fills_that_one_and_asks_again(bot: Bot) -> None:
    where = {**PARKED, "community": "安居社区"}
    _, slots = await validate(bot, "compound", "5栋1楼", where)
    assert slots["address"] == "5栋1楼" and slots["compound"] is None  # not a compound: asked again
    _, slots = await validate(bot, "address", "13912345678", {**where, "compound": "安居苑"})
    assert slots["phone"] == "+8613912345678" and slots["address"] is None
    _, slots = await validate(bot, "phone", "13912345678 今天就要来人", {**where, "address": "5栋"})
    assert slots["phone"] == "+8613912345678" and slots["urgency"] == "urgent"


async def test_a_fact_never_overwrites_an_answered_question(bot: Bot) -> None:
    done = {**PARKED, "community": "安居社区", "compound": "安居苑", "address": "3栋"}
    _, slots = await validate(bot, "phone", "我住锦江花园5栋 电话13912345678", done)
    assert slots == {"phone": "+8613912345678"}


async def test_a_known_compound_gives_its_community(bot: Bot) -> None:
    _, slots = await validate(bot, "community", "幸福家園", PARKED)  # Traditional, as typed
    assert slots["community"] == "安居社区" and slots["compound"] == "幸福家园"


async def test_urgency_reads_negation(bot: Bot) -> None:
    for said, meant in [
        ("不是很急", "normal"),
        ("不算太急", "normal"),
        ("慢慢来", "normal"),
        ("急死了", "urgent"),
    ]:
        assert (await validate(bot, "urgency", said, PARKED))[1]["urgency"] == meant, said


async def test_cancelling_in_a_sentence_ends_the_form(bot: Bot) -> None:
    said = "算了 我还是自己找物业吧 不用登记了"
    for slot in ("community", "compound", "address", "phone", "urgency", "confirm"):
        _, slots = await validate(bot, slot, said, {**PARKED, "community": "安居社区"})
        assert slots["request_cancelled"] is True and slots.get(slot) is None, slot


async def test_thanks_and_goodbye_are_answered_and_the_question_stays(bot: Bot) -> None:
    messages, slots = await validate(bot, "community", "谢谢啦", PARKED)
    assert texts(messages) == "不客气!还差几个问题就登记好了。"
    assert slots == {"community": None}  # no failed answer counted, the form asks again
    messages, slots = await validate(bot, "compound", "拜拜", {**PARKED, "community": "安居社区"})
    assert texts(messages) == (
        "好的,您先忙。这次的诉求还没有登记完,方便的时候回来接着回答就行;不想登记了可以说“取消”。"
    )
    assert slots == {"compound": None}


async def test_traditional_answers(bot: Bot) -> None:
    assert (await validate(bot, "confirm", "確認", PARKED))[1]["confirm"] == "yes"
    _, slots = await validate(bot, "compound", "幸福家園", {**PARKED, "community": "安居社区"})
    assert slots["compound"] == "幸福家园"
    assert (await validate(bot, "fb_contacted", "聯繫過了", form="feedback_form"))[1]["fb_contacted"] == "yes"
    assert (await validate(bot, "fb_solved", "沒有解決", form="feedback_form"))[1]["fb_solved"] == "no"
    assert (await validate(bot, "fb_rating", "基本滿意", form="feedback_form"))[1]["fb_rating"] == "basic"


async def test_prefilled_values_are_checked_as_values(bot: Bot) -> None:
    """Before the form asks (requested_slot unset), a slot holds a value, not an answer to read for facts."""
    t = tracker(
        "我住锦江那边 楼道灯坏了",
        "property",
        slots={**PARKED, "community": "锦江社区", "requested_slot": None},
        events=[{"event": "slot", "name": "community", "value": "锦江社区"}],
        form="request_form",
    )
    _, slots = await bot.run(ValidateRequestForm(), t)
    assert slots == {"community": "锦江社区", "home": None}


async def test_a_long_self_introduction_prefills_the_form(bot: Bot) -> None:
    text = "我叫王秀英 今年78了 电话13812345678 住在安居苑5栋302 我家厨房水管爆了"
    # What the NLU might tag: 78 as a building. An age is not an address.
    entities = [{"entity": "building", "value": "78"}, {"entity": "phone", "value": "13812345678"}]
    _, slots = await bot.run(ActionStartRequest(), tracker(text, "property", entities=entities))
    assert slots["request_next"] == "request" and slots["description"] == text
    assert slots["phone"] == "+8613812345678" and slots["compound"] == "安居苑"
    assert slots["community"] == "安居社区" and slots["address"] == "5栋302"


async def test_a_description_answer_also_prefills(bot: Bot) -> None:
    _, slots = await validate(
        bot, "description", "坏了三天了 我住幸福家园2栋 电话13912345678", {"short_text": "电梯"}
    )
    assert slots["description"] == "电梯 坏了三天了 我住幸福家园2栋 电话13912345678"
    assert (
        slots["compound"] == "幸福家园" and slots["address"] == "2栋" and slots["phone"] == "+8613912345678"
    )


async def test_small_talk_at_the_confirmation_and_in_the_feedback_form(bot: Bot) -> None:
    messages, slots = await validate(bot, "confirm", "谢谢", PARKED)
    assert texts(messages) == "不客气!还差几个问题就登记好了。" and slots == {"confirm": None}
    messages, slots = await validate(bot, "fb_solved", "拜拜", form="feedback_form")
    assert texts(messages) == "好的,您先忙。评价还没有做完,方便的时候回来接着回答就行。"
    assert slots == {"fb_solved": None}
    assert (await validate(bot, "fb_solved", "没问题了", form="feedback_form"))[1]["fb_solved"] == "yes"


async def test_an_answer_typed_in_traditional_is_still_an_answer(bot: Bot) -> None:
    """Rasa fills the slot with the text as typed, and sends the message as the NLU normalised it."""
    typed = "電話是13912345678 不算太急"
    t = tracker(
        "电话是13912345678 不算太急",
        "affirm",
        slots={
            **PARKED,
            "community": "安居社区",
            "compound": "幸福家园",
            "address": "5栋",
            "requested_slot": "phone",
        },
        events=[{"event": "user", "text": typed}, {"event": "slot", "name": "phone", "value": typed}],
        form="request_form",
    )
    _, slots = await bot.run(ValidateRequestForm(), t)
    assert slots == {"phone": "+8613912345678", "urgency": "normal"}


async def test_a_short_description_that_only_gives_a_place_is_asked_again(bot: Bot) -> None:
    _, slots = await validate(bot, "description", "3栋", {"category": "property"})
    assert slots == {"address": "3栋", "description": None}  # a building is no description of the problem


async def test_a_bare_no_thanks_to_the_phone_question_declines_the_phone_only(bot: Bot) -> None:
    where = {**PARKED, "community": "安居社区", "compound": "安居苑", "address": "3栋"}
    for said in ("不用了", "不需要了", "不用留"):
        _, slots = await validate(bot, "phone", said, where)
        assert slots["phone"] == "-" and not slots.get("request_cancelled"), said
    _, slots = await validate(bot, "phone", "算了 不登记了", where)  # stopping is still stopping
    assert slots["request_cancelled"] is True
