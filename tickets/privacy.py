"""Personal data (个人信息保护法): show the minimum. Phones, ID numbers and names are masked wherever the
full value is not needed, and never logged raw."""

from __future__ import annotations

import re

import phonenumbers

from tickets.errors import ValidationError

# What residents are told about keeping their data, on every channel (the assistant's notice, the Telegram
# /start), true to the defaults of the privacy sweep: tickets.retention (Policy.keep_contact_for,
# MINHU_KEEP_CONTACT_DAYS) and minhu.conversations (MINHU_KEEP_CHAT_DAYS). A deployment that changes either
# setting changes these words with it (tests/test_retention.py checks the defaults against them).
KEEP_CHAT_DAYS = 30
KEEP_CONTACT_DAYS = 365
DATA_KEPT = (
    f"您和助手的对话记录在最后一次对话 {KEEP_CHAT_DAYS} 天后删除;诉求办结或撤销满一年后,删除其中的电话和地址,"
    "诉求内容和办理情况留作统计。"
)
DATA_DELETION = (
    "如果您希望提前删除,请说“转人工”,或到所在社区党群服务中心一站式窗口提出,工作人员核实身份后为您删除。"
)

INTRODUCTION = (
    "您好!我是民呼社区助手 🏠\n"
    "您可以直接用平常的话告诉我遇到的问题,比如“楼道灯坏了”“想给老人申请助餐”,我会登记成诉求,"
    "派给您所在网格的工作人员或党员志愿者,并把进展告诉您。"
)
CONSENT_QUESTION = "点“同意”表示您同意我们为办理诉求保存上述信息。"


def what_we_keep(account: str, attachments: str) -> str:
    """The notice every channel shows before anything is kept (Telegram's /start, the web chat's first
    visit): what is stored and why, how long, and how to have it deleted. A channel names only its own
    account (`account`) and how it keeps photos (`attachments`)."""
    return (
        f"我们保存什么:{account};您发来的消息(包括诉求内容)、{attachments};"
        "您告诉我们的社区、小区、地址和电话;您和助手的全部对话记录。"
        "电话加密保存,只给接单的人和社区、街道工作人员看,其他人看到的都是打码的号码。"
        "这些信息只用于办理您的诉求。\n" + DATA_KEPT + DATA_DELETION
    )


# Mainland mobiles, landlines with area code, and 18-digit resident ID numbers (last digit may be X).
_ID_RE = re.compile(r"(?<![0-9])(\d{6})\d{8}(\d{3}[\dXx])(?![0-9])")
_MOBILE_RE = re.compile(r"(?<![0-9])(1[3-9]\d)\d{4}(\d{4})(?![0-9])")
_LANDLINE_RE = re.compile(r"(?<![0-9])(0\d{2,3})-?\d{3,4}(\d{4})(?![0-9])")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u2028\u2029\ufeff]")


def normalize_phone(raw: str) -> str:
    """A phone as stored: E.164 (+8613812345678). Raises ValidationError with a friendly message."""
    text = re.sub(r"[\s\-()()]", "", raw or "")
    try:
        number = phonenumbers.parse(text, "CN")
    except phonenumbers.NumberParseException:
        raise ValidationError("这个电话号码好像不对,请输入 11 位手机号或带区号的座机号。") from None
    if not phonenumbers.is_valid_number(number):
        raise ValidationError("这个电话号码好像不对,请输入 11 位手机号或带区号的座机号。")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask_phone(phone: str | None) -> str:
    """+8613812345678 → 138****5678."""
    if not phone:
        return ""
    digits = re.sub(r"\D", "", phone)
    if digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    if len(digits) < 7:
        return "*" * len(digits)
    return f"{digits[:3]}****{digits[-4:]}"


def mask_name(name: str | None) -> str:
    """王小明 → 王**: enough for a resident to know who is coming, no more."""
    if not name:
        return "工作人员"
    return name[0] + "*" * max(1, len(name) - 1)


def scrub(text: str) -> str:
    """Mask every phone and ID number inside free text (for logs and for viewers who may not see them)."""
    text = _ID_RE.sub(lambda m: f"{m.group(1)}********{m.group(2)}", text)
    text = _MOBILE_RE.sub(lambda m: f"{m.group(1)}****{m.group(2)}", text)
    return _LANDLINE_RE.sub(lambda m: f"{m.group(1)}-****{m.group(2)}", text)


# How residents name a neighbour or themselves without a full name: a common surname and a form of address
# (张阿姨, 王大爷, 李师傅). Masked to 某阿姨 on public views.
_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
    "姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
_ADDRESSED_RE = re.compile(
    f"[{_SURNAMES}](?=(?:阿姨|大爷|大妈|大姐|大哥|师傅|老师|先生|女士|小姐|奶奶|爷爷|叔叔|婶婶|老太|老头|总|哥|姐))"
)
# A home's number inside a compound: 3栋2单元501室, 5号楼1202, 12层 — the compound's name may stay.
_HOME_RE = re.compile(r"\d+\s*(?=(?:号楼|栋|幢|座|单元|层|楼|室|号|户))|(?<=[室楼栋元号])\s*\d{2,}")
_NAME_TAGS = frozenset({"nr", "nrfg", "nrt"})  # jieba's tags for people's names


def public_text(text: str) -> str:
    """A resident's words as anyone may read them (the Open311 API): phones and ID numbers masked as
    `scrub` does, people's names (jieba's part-of-speech tags, and 张阿姨-style forms of address) and the
    numbers of a home (building, unit, room) replaced. Cautious on purpose: a word wrongly taken for a name
    is masked too."""
    import jieba
    import jieba.posseg  # loads its dictionary (about a second) on first use: only where needed

    jieba.setLogLevel(60)  # jieba logs its dictionary loading at INFO
    addressed = _ADDRESSED_RE.sub("某", scrub(text))
    words = [w.word if w.flag not in _NAME_TAGS else "某人" for w in jieba.posseg.lcut(addressed)]
    return _HOME_RE.sub("*", "".join(words))


def clean_text(text: str) -> str:
    """Drop control and zero-width characters; keep emoji and line breaks. Lone UTF-16 surrogates (half an
    emoji cut by a client) become U+FFFD instead of breaking the database and the channels."""
    text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return _CONTROL_RE.sub("", text).strip()
