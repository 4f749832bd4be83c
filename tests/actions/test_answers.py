"""Reading answers (actions.answers), without Rasa or a database: issue 13, "Answers in forms"."""

from __future__ import annotations

import pytest

from actions.answers import (
    Facts,
    FeedbackFacts,
    Place,
    SmallTalk,
    facts_in,
    feedback_facts,
    is_cancel,
    is_skip,
    normalize,
    phone_in,
    rating_of,
    small_talk,
    urgency_of,
    yes_no,
)
from tickets.models import Rating, Urgency

PLACES = [Place("安居社区", ("安居苑", "幸福家园")), Place("锦江社区", ("锦江花园",))]


@pytest.mark.parametrize(
    "text",
    ["不是很急", "不算太急", "不急", "不着急", "不著急", "没那么急", "并不急", "不用急", "不太急", "不紧急",
     "慢慢来", "慢慢来 不赶时间", "不要紧", "一般", "一般吧", "还好", "不急不急", "不急的", "也没有很急", "别着急"],
)  # fmt: skip
def test_negated_or_relaxed_urgency_is_normal(text: str) -> None:
    assert urgency_of(text) == Urgency.NORMAL


@pytest.mark.parametrize(
    "text",
    ["急", "很急", "急死了", "今天就要", "今天就要处理", "特别着急", "马上来", "等不及了 很急", "越快越好",
     "急(有安全隐患或今天就要处理)", "有点急", "十万火急", "不是不急 是很急"],
)  # fmt: skip
def test_urgency_said_is_urgent(text: str) -> None:
    assert urgency_of(text) == Urgency.URGENT


@pytest.mark.parametrize(
    "text", ["", "快递柜坏了", "楼上漏水到我家", "3栋2单元", "楼上一般晚上十点以后还在跺脚"]
)
def test_no_urgency_said(text: str) -> None:
    assert urgency_of(text) is None


def test_prefilled_codes_read_back() -> None:
    assert urgency_of("urgent") == Urgency.URGENT and urgency_of("normal") == Urgency.NORMAL
    assert rating_of("basic") == Rating.BASIC


def test_one_answer_several_facts() -> None:
    assert facts_in("我住锦江那边的金色雅园", PLACES) == Facts(community="锦江社区", compound="金色雅园")
    assert facts_in("我家住在安居社区这边的金桂苑", PLACES) == Facts(community="安居社区", compound="金桂苑")
    assert facts_in("5栋1楼", PLACES) == Facts(address="5栋1楼")
    assert facts_in("3栋2单元501 13912345678", PLACES) == Facts(address="3栋2单元501", phone="13912345678")
    assert facts_in("电话 139 1234 5678", PLACES) == Facts(phone="13912345678")
    assert facts_in("幸福家园十二栋", PLACES) == Facts(
        community="安居社区", compound="幸福家园", address="十二栋"
    )
    # A compound the org lists gives its community.
    assert facts_in("锦江花园", PLACES) == Facts(community="锦江社区", compound="锦江花园")


def test_a_long_self_introduction() -> None:
    text = "我叫王秀英 今年78了 电话13812345678 住在安居苑5栋302 我家厨房水管爆了"
    assert facts_in(text, PLACES) == Facts(
        community="安居社区", compound="安居苑", address="5栋302", phone="13812345678"
    )


@pytest.mark.parametrize(
    "text",
    ["今年78了", "78岁", "我住了20年", "垃圾堆在小区门口", "我家住在幼儿园旁边", "两栋楼之间的路灯坏了",
     "谢谢啦", "拜拜", "电梯坏了三天了"],
)  # fmt: skip
def test_no_place_guessed(text: str) -> None:
    found = facts_in(text, PLACES)
    assert (found.community, found.compound, found.address, found.phone) == (None, None, None, None)


def test_traditional_is_read_as_simplified() -> None:
    assert normalize("確認") == "确认" and normalize("１３８") == "138"
    assert facts_in("幸福家園", PLACES).compound == "幸福家园"
    assert yes_no("聯繫過了") is True and yes_no("沒有聯繫") is False
    assert rating_of("不滿意") == Rating.UNSATISFIED and rating_of("滿意") == Rating.SATISFIED
    assert urgency_of("不著急") == Urgency.NORMAL and urgency_of("很緊急") == Urgency.URGENT
    assert is_cancel("算了 不辦了") and small_talk("謝謝") == SmallTalk.THANKS
    assert phone_in("電話１３９１２３４５６７８") == "13912345678"


@pytest.mark.parametrize(
    "text",
    ["算了 我还是自己找物业吧 不用登记了", "算了 不办了", "取消", "不用登记了", "撤销这个诉求", "取消这次登记",
     "我不办了 谢谢", "不要帮我登记了", "算了算了"],
)  # fmt: skip
def test_cancelling_in_a_word_or_a_sentence(text: str) -> None:
    assert is_cancel(text)


@pytest.mark.parametrize(
    "text", ["物业说不办了 怎么办", "安居苑", "不算太急", "13912345678", "别着急 慢慢修"]
)
def test_not_cancelling(text: str) -> None:
    assert not is_cancel(text)


def test_small_talk() -> None:
    assert small_talk("谢谢啦") == SmallTalk.THANKS and small_talk("多谢了") == SmallTalk.THANKS
    assert small_talk("拜拜") == SmallTalk.GOODBYE and small_talk("好的 再见") == SmallTalk.GOODBYE
    assert small_talk("你好") == SmallTalk.GREETING
    assert small_talk("谢谢 住安居苑") is None and small_talk("安居社区") is None


def test_yes_no_of_feedback() -> None:
    assert yes_no("联系过") is True and yes_no("打过电话了") is True and yes_no("来过了") is True
    assert yes_no("没有联系") is False and yes_no("还没有") is False and yes_no("没解决") is False
    assert yes_no("不清楚") is False and yes_no("啥") is None


def test_skip_words() -> None:
    assert is_skip("跳过") and is_skip("不留电话") and not is_skip("5栋302")


@pytest.mark.parametrize(
    ("text", "facts"),
    [
        ("联系过了 但是没解决", FeedbackFacts(contacted=True, solved=False)),
        ("聯繫過了,但是還沒修好", FeedbackFacts(contacted=True, solved=False)),
        ("没人联系我 也没解决", FeedbackFacts(contacted=False, solved=False)),
        ("来过了 修好了 满意", FeedbackFacts(contacted=True, solved=True, rating=Rating.SATISFIED)),
        ("有人打过电话 不过还没弄好 不满意", FeedbackFacts(True, False, Rating.UNSATISFIED)),
        ("联系过", FeedbackFacts(contacted=True)),
        ("问题解决了", FeedbackFacts(solved=True)),
        ("嗯", FeedbackFacts()),  # says yes, but to nothing named: the question asked decides
    ],
)
def test_one_feedback_answer_speaks_of_each_question_it_names(text: str, facts: FeedbackFacts) -> None:
    assert feedback_facts(text) == facts
