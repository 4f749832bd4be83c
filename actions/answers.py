"""Reading residents' answers: what a message says, whichever question it answers.

Everything here reads text after `normalize` (Traditional → Simplified with OpenCC, full-width → half-width),
the same normalisation the NLU pipeline applies (nlu/components/opencc_normalizer.py, which runs in the Rasa
venv and cannot be imported here): 確認 is 确认 to the actions as it is to the classifier.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import Any

import opencc

from tickets.models import Rating, Urgency

SKIP = "-"  # a slot the resident chose not to answer (or that is known already)


@cache
def _converter() -> Any:  # OpenCC ships no types
    return opencc.OpenCC("t2s")


def normalize(text: str | None) -> str:
    """Simplified Chinese with half-width digits and letters (１３８ → 138), as the NLU sees it."""
    if not text:
        return ""
    half = "".join(chr(ord(ch) - 0xFEE0) if "！" <= ch <= "～" else ch for ch in text)
    return str(_converter().convert(half.replace("\u3000", " ")))


def fold(text: str | None) -> str:
    """Letters and digits only, lower case: what is compared."""
    return "".join(ch for ch in (text or "").lower() if ch.isalnum())


# ------------------------------------------------------------------------------------ cancel, skip, small talk

# Anywhere in the message: the resident no longer wants this registered ("算了 我自己找物业吧 不用登记了").
CANCEL_ANYWHERE = re.compile(
    r"(不用|不要|别|不需要|不想)(再)?(帮我)?(登记|办理|办|提交|报)了?(了|啦|吧)|不用登记|不要登记|别登记|不登记了|"
    r"取消(登记|这次|这个|诉求|申请)|撤销(登记|这次|这个|诉求|申请)?|我不办了|自己(去)?找物业|自己(去)?(处理|解决)吧"
)
# Only at the start of a short answer: 算了 / 取消 / 不用了 alone mean "stop", inside a sentence they may not.
CANCEL_START = ("取消", "不办了", "算了", "不用了", "不要了", "不弄了", "不需要了")
SKIP_WORDS = ("跳过", "不留", "不用", "不方便", "没有", "不想说", "不知道", "无")
YES_WORDS = ("确认", "提交", "对", "是", "没问题", "好", "可以", "行", "嗯", "ok", "yes", "没错", "正确")


def is_cancel(text: str | None) -> bool:
    plain = normalize(text)
    folded = fold(plain)
    if not folded:
        return False
    return bool(CANCEL_ANYWHERE.search(folded)) or (
        len(folded) <= 8 and any(folded.startswith(w) for w in CANCEL_START)
    )


def is_skip(text: str | None) -> bool:
    folded = fold(normalize(text))
    return folded == SKIP or (len(folded) <= 8 and any(w in folded for w in SKIP_WORDS))


class SmallTalk(StrEnum):
    THANKS = "thanks"
    GOODBYE = "goodbye"
    GREETING = "greeting"


# Whole short messages only ("谢谢啦", "拜拜"): a longer one carries something else.
SMALL_TALK = {
    SmallTalk.THANKS: re.compile(
        r"^(好的?|嗯)?(谢谢|多谢|感谢|谢了|辛苦)(你|您|你们|了)*(啦|了|哈|呀|啊|哦|喽)*$"
    ),
    SmallTalk.GOODBYE: re.compile(
        r"^(好的?|那)?(拜拜|再见|bye(bye)?|88|先这样|回头(再)?聊|下次(再)?聊|我先走了|先忙了?)(了|啦|哈|呀|啊|哦|吧)*$"
    ),
    SmallTalk.GREETING: re.compile(r"^(你好|您好|在吗|在不在|哈喽|hello|hi)(呀|啊|哦)*$"),
}


def small_talk(text: str | None) -> SmallTalk | None:
    folded = fold(normalize(text))
    return next((kind for kind, pattern in SMALL_TALK.items() if pattern.match(folded)), None)


# ---------------------------------------------------------------------------------------------- urgency

# A negation before 急 with only degree words between: 不急, 不是很急, 不算太急, 没那么急, 并不着急, 不用急.
# 著急 is how OpenCC leaves 著急 (著 is also a Simplified character).
_NOT_URGENT = re.compile(r"(不|没|没有|(?<!特)别|无)[是算太很那么怎大特别用必要咋着著有紧]{0,4}急|不赶")
_NORMAL_WORDS = ("慢慢来", "慢慢弄", "不要紧", "不碍事", "有空再", "有时间再")
# Only as a whole short answer: 一般晚上最吵 says nothing about urgency.
_NORMAL_ANSWERS = ("一般", "普通", "随便", "都行", "还好")
_URGENT_WORDS = ("急", "马上", "立刻", "立即", "赶紧", "尽快", "越快越好", "赶快", "快点", "今天就要", "今天就得",
                 "今天必须", "等不了", "等不及", "危险", "漏电", "urgent")  # fmt: skip


def urgency_of(text: str | None) -> Urgency | None:
    """急 or 不急, reading negation: 不是很急 is not urgent, 急死了 and 今天就要 are."""
    folded = fold(normalize(text))
    if not folded:
        return None
    if folded in (Urgency.URGENT.value, Urgency.NORMAL.value):  # a prefilled slot
        return Urgency(folded)
    rest = _NOT_URGENT.sub(" ", folded)  # what is left once the negated 急 are taken out
    if any(w in rest for w in _URGENT_WORDS):
        return Urgency.URGENT
    if rest != folded or any(w in folded for w in _NORMAL_WORDS):
        return Urgency.NORMAL
    if len(folded) <= 4 and folded.startswith(_NORMAL_ANSWERS):
        return Urgency.NORMAL
    return None


# ------------------------------------------------------------------------------------------- 回访 answers

_NO_START = ("没", "未", "否", "不", "还没", "no")
_YES_WORDS = ("是", "有", "联系过", "联系了", "打过", "来过", "上门", "解决", "好了", "修好", "弄好", "对", "嗯",
              "yes", "ok")  # fmt: skip


def yes_no(text: str | None) -> bool | None:
    """联系过吗 / 解决了吗 answers: True, False, or None when unclear."""
    folded = fold(normalize(text))
    if not folded:
        return None
    if folded.startswith(("没问题", "不错")):  # yes, though they start like a no
        return True
    if any(folded.startswith(w) for w in _NO_START) or "没有" in folded:
        return False
    if any(w in folded for w in _YES_WORDS):
        return True
    return None


# 回访's three answers in one message ("联系过了 但是没解决"): each clause speaks of contact or of the problem.
_CLAUSES = re.compile(r"[,,。;;、!!??\s]+|但是|但|可是|不过|就是|而且|也")
_CONTACT = ("联系", "电话", "来过", "上门", "找过", "打过", "没人来", "没来")
_SOLVED = ("解决", "修好", "处理好", "弄好", "办好", "好了", "没好", "修了")


@dataclass(frozen=True)
class FeedbackFacts:
    """What one 回访 answer says of each question; None where it says nothing."""

    contacted: bool | None = None
    solved: bool | None = None
    rating: Rating | None = None


def feedback_facts(text: str | None) -> FeedbackFacts:
    contacted = solved = None
    plain = normalize(text)
    for clause in filter(None, _CLAUSES.split(plain)):
        if contacted is None and any(w in clause for w in _CONTACT):
            contacted = yes_no(clause)
        elif solved is None and any(w in clause for w in _SOLVED):
            solved = yes_no(clause)
    return FeedbackFacts(contacted, solved, rating_of(plain) if "满意" in plain else None)


def rating_of(text: str | None) -> Rating | None:
    folded = fold(normalize(text))
    if folded in set(Rating):
        return Rating(folded)
    if "不满意" in folded or "很差" in folded or "太差" in folded:
        return Rating.UNSATISFIED
    if "基本满意" in folded or "还行" in folded or "一般" in folded or "还可以" in folded:
        return Rating.BASIC
    if "满意" in folded or "很好" in folded or "非常好" in folded:
        return Rating.SATISFIED
    return None


# --------------------------------------------------------------------------------------- facts in a message

# Mobile or landline, with the spaces and dashes residents type inside it (138 1234 5678, 027-8765 4321).
_PHONE = re.compile(r"(?<!\d)(1[3-9](?:[\s-]?\d){9}|0\d{2,3}[\s-]?\d{3,4}[\s-]?\d{4})(?!\d)")
_NUM = r"(?:\d{1,4}|[二三四五六七八九十]{1,3})"  # not 一 / 两: 一栋楼, 两栋楼之间 name no building
# A building, then unit, floor and room: 5栋302, 3栋2单元501, 5栋1楼, 12号楼3层. A bare number is not an address
# (今年78了 is an age), nor is a number before 岁.
_ADDRESS = re.compile(
    rf"{_NUM}\s*(?:栋|幢|号楼|座)(?:\s*{_NUM}\s*单元)?(?:\s*{_NUM}\s*(?:楼|层))?(?:\s*\d{{1,4}}\s*(?:室|号|房)?)?"
    rf"|{_NUM}\s*单元\s*\d{{1,4}}\s*(?:室|号)?|\d{{3,4}}\s*(?:室|号房)"
)
_COMPOUND_SUFFIX = ("小区", "花园", "家园", "公寓", "宿舍", "新村", "大院", "苑", "园", "府", "城", "湾")
# What comes before a compound's name when the resident says where they live.
_LIVE = re.compile(r"住在|住|家在")
_NOT_COMPOUNDS = ("幼儿园", "动物园", "游乐园", "植物园", "小区里", "养老院")
_FILLER = re.compile(r"^(?:那边|这边|那块|那里|这里|附近)?的?")


@dataclass(frozen=True)
class Place:
    """What the organisation knows: a community and its compounds."""

    community: str
    compounds: tuple[str, ...]


@dataclass(frozen=True)
class Facts:
    """What one message says about the request form's questions; None where it says nothing."""

    community: str | None = None
    compound: str | None = None
    address: str | None = None
    phone: str | None = None
    urgency: Urgency | None = None

    def slots(self) -> dict[str, str]:
        found = {
            "community": self.community,
            "compound": self.compound,
            "address": self.address,
            "phone": self.phone,
            "urgency": self.urgency.value if self.urgency else None,
        }
        return {slot: value for slot, value in found.items() if value}


def phone_in(text: str) -> str | None:
    """The digits of the first phone number in the text (checked by tickets.privacy.normalize_phone later)."""
    match = _PHONE.search(normalize(text))
    return re.sub(r"[\s-]", "", match.group(1)) if match else None


def match_community(text: str, known: Sequence[tuple[str, str]]) -> str | None:
    """A community name from the resident's words: 安居 / 安居社区 / the code."""
    folded = fold(normalize(text))
    if not folded:
        return None
    for code, name in known:
        short = name.removesuffix("社区")
        if folded in (fold(code), fold(name), fold(short)) or fold(name) in folded or fold(short) in folded:
            return name
    return None


def facts_in(text: str | None, places: Sequence[Place]) -> Facts:
    """Every fact a message gives: 我住锦江那边的金色雅园 is a community and a compound; 电话138… 住在安居苑5栋302
    a phone, a compound (so its community) and an address. Nothing is guessed from a bare number."""
    plain = normalize(text)
    phone = phone_in(plain)
    rest = _PHONE.sub(" ", plain)
    community = match_community(rest, [("", p.community) for p in places])
    compound = None
    for place in places:
        for name in place.compounds:
            if fold(name) and fold(name) in fold(rest):
                compound, community = name, community or place.community
                rest = rest.replace(name, " ")
                break
        if compound:
            break
    address_match = _ADDRESS.search(rest)
    address = re.sub(r"\s+", "", address_match.group(0)) if address_match else None
    if compound is None:
        compound = _unknown_compound(rest, community)
    return Facts(community, compound, address, phone, urgency_of(plain))


def _unknown_compound(text: str, community: str | None) -> str | None:
    """A compound the organisation does not list, named where the resident says they live: 住锦江那边的金色雅园."""
    for said in _LIVE.finditer(text):
        after = text[said.end() :]
        if community:
            for name in (community, community.removesuffix("社区")):
                if after.startswith(name):
                    after = after[len(name) :]
                    break
        after = _FILLER.sub("", after)
        chinese = re.match(r"[\u4e00-\u9fff]{1,8}", after)
        if not chinese:
            continue
        words = chinese.group(0)
        for end in range(len(words), 2, -1):  # the longest name ending like a compound's
            found = words[:end]
            suffix = next((s for s in _COMPOUND_SUFFIX if found.endswith(s)), None)
            if suffix and len(found) - len(suffix) >= 2 and found not in _NOT_COMPOUNDS:
                return found
    return None


def places_of(communities: Mapping[str, Sequence[str]]) -> list[Place]:
    return [Place(name, tuple(compounds)) for name, compounds in communities.items()]
