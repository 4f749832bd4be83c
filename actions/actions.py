"""The custom actions: request form (群众点单), status, feedback (回访), cancel, guide answers, hand-off, and the
urgent ticket offered after an emergency (紧急求助; the emergency numbers are said by Rasa itself before).

Every action is thin: it reads the tracker, calls the ticket core (tickets.service) within a time limit,
and words the answer. A failing database never loses a request: it is saved for retry (runtime.pending).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import structlog
from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.answers import (
    SKIP,
    YES_WORDS,
    Facts,
    Place,
    SmallTalk,
    facts_in,
    feedback_facts,
    fold,
    is_cancel,
    is_skip,
    match_community,
    normalize,
    phone_in,
    rating_of,
    small_talk,
    urgency_of,
    yes_no,
)
from actions.guard import Guarded
from actions.runtime import RUNTIME, PendingRequest, channel_id, register, within
from actions.texts import (
    HANDOFF_SAVED_TEXT,
    HANDOFF_SAVED_UNPLACED_TEXT,
    MIN_DESCRIPTION,
    NUMBER_RE,
    PRIVACY_NOTICE,
    SAVED_FOR_RETRY_TEXT,
    category_buttons,
    category_name,
    when,
)
from tickets.actors import Actor
from tickets.catalogue import DispatchMode
from tickets.errors import DomainError, TicketNotFound, TooManyTickets
from tickets.guide import Entry, EntryKind
from tickets.models import Resident, Status, Ticket, Urgency
from tickets.privacy import clean_text, mask_name, mask_phone, normalize_phone, scrub
from tickets.problems import Problem, problems
from tickets.service import Intake, TicketService

log = structlog.get_logger("actions")

REQUEST_SLOTS = ("description", "community", "compound", "address", "phone", "urgency", "confirm")
FEEDBACK_SLOTS = ("fb_contacted", "fb_solved", "fb_rating")
QUESTION_WORDS = ("怎么", "如何", "什么", "哪些", "哪里", "吗", "材料", "条件", "流程", "能不能", "可不可以",
                  "咨询", "问一下", "问问", "?", "?", "多少", "标准")  # fmt: skip
# "…能帮我办吗": the resident has asked for it already, so it is registered without asking again.
HELP_WORDS = ("帮我办", "帮忙办", "帮我登记", "帮我申请", "帮我开", "能帮我", "能帮忙", "可以帮我", "请帮我",
              "给我办", "替我办", "帮我们办", "帮我弄", "帮我报", "帮我约", "给我登记", "帮我联系")  # fmt: skip
WITHDRAW_WORDS = ("撤销", "撤回", "取消", "不办了")
CHINESE_COUNTS = {2: "两", 3: "三", 4: "四", 5: "五"}
PHONE_DECLINED = {"不用", "不用了", "不要了", "不需要", "不需要了", "不用留", "不留了"}
HANDOFF_BUTTON = {"title": "请社区工作人员联系我", "payload": "/human_handoff"}


# ---------------------------------------------------------------------------------------- helpers


async def _service() -> TicketService:
    return await RUNTIME.service()


async def resident_of(tracker: Tracker) -> Resident:
    service = await _service()
    return await within(lambda: service.resident_for(channel_id(tracker.sender_id)))


async def resident_id_of(tracker: Tracker) -> int:
    key = channel_id(tracker.sender_id)
    cached = RUNTIME.residents.get(key)
    if cached is None:
        cached = (await resident_of(tracker)).id
        RUNTIME.residents[key] = cached
    return cached


def user_text(tracker: Tracker) -> str:
    """The resident's words as the NLU read them (Simplified, half-width): Rasa keeps the text as typed."""
    text = str(tracker.latest_message.get("text") or "").strip()
    return "" if text.startswith("/") else normalize(text)  # a button payload is not the resident's words


def intent_of(tracker: Tracker) -> str:
    return str((tracker.latest_message.get("intent") or {}).get("name") or "")


def entity(tracker: Tracker, name: str) -> str | None:
    values = [e.get("value") for e in tracker.latest_message.get("entities") or [] if e.get("entity") == name]
    return str(values[0]) if values and values[0] else None


def offer_of(tracker: Tracker) -> dict[str, Any]:
    raw = tracker.get_slot("offer")
    try:
        return dict(json.loads(raw)) if raw else {}
    except (TypeError, ValueError):
        return {}


def _offer(**data: Any) -> SlotSet:
    return SlotSet("offer", json.dumps(data, ensure_ascii=False))


def _clear(slots: Sequence[str]) -> list[EventType]:
    return [SlotSet(slot, None) for slot in slots]


def _clear_filled(tracker: Tracker, slots: Sequence[str]) -> list[EventType]:
    """Clears only the form's slots that hold a value. Rasa validates every form slot set since the
    resident's message when the form opens, an empty one too: clearing already empty slots made the 回访
    start with three "请选择…" before its first question."""
    return [SlotSet(slot, None) for slot in slots if tracker.get_slot(slot) is not None]


def _moved_on(tracker: Tracker) -> list[EventType]:
    """The resident went on to something else: a hand-off question left unanswered no longer waits (else a
    later message the NLU cannot place would be handed over)."""
    return [SlotSet("handoff_waiting", None)] if tracker.get_slot("handoff_waiting") else []


async def communities() -> list[tuple[str, str]]:
    """(code, name) of the org's communities, for buttons."""
    service = await _service()
    return await RUNTIME.org_data("communities", service.communities)


async def compounds_of(community_name: str) -> list[str]:
    service = await _service()
    return await RUNTIME.org_data(f"compounds:{community_name}", lambda: service.compounds_of(community_name))


async def responder_names(ids: Sequence[int | None]) -> dict[int, str]:
    """Responders' names by id; none when the database does not answer (mask_name says 工作人员)."""
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    try:
        service = await _service()
        names = await RUNTIME.org_data("responders", service.responder_names)
        if not wanted <= names.keys():  # someone who joined within the minute
            RUNTIME.forget("responders")
            names = await RUNTIME.org_data("responders", service.responder_names)
    except Exception as error:  # names only word the answer: what was done is said without them
        log.warning("responder names unavailable", error=type(error).__name__)
        return {}
    return {i: names[i] for i in wanted if i in names}


async def facts_of(text: str) -> Facts:
    """Every fact the message gives (answers.facts_in), against the org's communities and compounds; with
    the database away, what needs no list (phone, building, urgency)."""
    places: list[Place] = []
    try:
        for _, name in await communities():
            places.append(Place(name, tuple(await compounds_of(name))))
    except Exception as error:
        log.warning("places unavailable", error=type(error).__name__)
    return facts_in(text, places)


def helper(category: str) -> str:
    """Who will contact the resident for this category, as the offer of help says it."""
    found = RUNTIME.catalogue.categories.get(category)
    return "社区志愿者" if found is not None and found.dispatch == DispatchMode.GRAB else "社区工作人员"


async def named_community(text: str) -> str | None:
    """The community a message names, or None (also when the list cannot be read)."""
    if not text:
        return None
    try:
        return match_community(text, await communities())
    except Exception as error:
        log.warning("communities unavailable", error=type(error).__name__)
        return None


# ---------------------------------------------------------------------------------- 群众点单 (request)


class ActionStartRequest(Guarded, Action):
    """A service request (or a yes to an offer): answer from the guide, or prefill and open the form."""

    def name(self) -> str:
        return "action_start_request"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        return [*_moved_on(tracker), *await self._start(dispatcher, tracker)]

    async def _start(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> list[EventType]:
        intent, text, offer = intent_of(tracker), user_text(tracker), offer_of(tracker)
        answered: list[EventType] = [SlotSet("request_next", "answered")]
        catalogue = RUNTIME.catalogue  # not the database: a new request is taken even when it is down
        if offer.get("kind") == "handoff" and (community := await named_community(text)):
            # The community the hand-off asked for, typed instead of tapped.
            return [*answered, *await hand_off(dispatcher, tracker, community)]
        if intent not in catalogue.categories:  # affirm: a yes to what we offered last
            if offer.get("kind") == "emergency":
                return [*answered, *await create_emergency(dispatcher, tracker, offer)]
            if offer.get("kind") == "guide":
                return await self._open_form(
                    dispatcher,
                    tracker,
                    offer["category"],
                    offer.get("text") or "",
                    from_offer=True,
                    rest=[Problem(c, t) for c, t in offer.get("rest") or []],
                )
            if offer.get("kind") == "cancel":
                dispatcher.utter_message(text="好的,我们继续为您办理。有新情况随时告诉我。")
                return [*answered, SlotSet("offer", None)]
            dispatcher.utter_message(
                text="好的。请问有什么需要帮忙的?可以直接说说您遇到的问题。",
                buttons=category_buttons(catalogue),
            )
            return answered
        entry = RUNTIME.guide.lookup(text) if text else None
        if intent == "certificate" or (
            entry is not None
            and entry.kind is EntryKind.CONSULTATION
            and any(w in text for w in QUESTION_WORDS)
        ):
            return await self._answer(dispatcher, tracker, entry, intent, text)
        found = problems(text, catalogue)
        if len(found) > 1 and intent in {p.category for p in found}:
            # Two matters in one message: one ticket each, the one the NLU heard first, the others offered
            # after it, and said so now.
            first = next(p for p in found if p.category == intent)
            rest = [p for p in found if p is not first]
            said = "、".join(f"「{p.text}」" for p in [first, *rest])
            dispatcher.utter_message(
                text=f"您说了{CHINESE_COUNTS.get(len(found), str(len(found)))}件事:{said}。不同的事由不同的人负责,我们分开登记,一件一件来:"
                f"先登记「{first.text}」,登记好再问您下一件。"
            )
            return await self._open_form(dispatcher, tracker, first.category, first.text, rest=rest)
        return await self._open_form(dispatcher, tracker, intent, text)

    async def _answer(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        entry: Entry | None,
        intent: str,
        text: str,
    ) -> list[EventType]:
        """一次性告知: the guide's answer in one message, with the offer of help only when the community can
        give it and the resident has not asked for it already."""
        answered: list[EventType] = [SlotSet("request_next", "answered"), SlotSet("offer", None)]
        if entry is None:  # which certificate? the list, and the question back: nothing to offer yet
            names = "、".join(RUNTIME.guide.certificate_names())
            dispatcher.utter_message(
                text=f"社区目前可以开具的证明有:{names}。\n很多证明已经取消(整治“万能章”),"
                "您可以告诉我要办哪一种证明、用来做什么,我把要带的材料一次告诉您。"
            )
            return answered
        if not entry.offers_help:  # the community no longer issues it: where to go is the whole answer
            dispatcher.utter_message(text=entry.answer)
            return answered
        category = entry.category or intent
        if any(w in text for w in HELP_WORDS):
            dispatcher.utter_message(text=entry.answer)
            return await self._open_form(dispatcher, tracker, category, text)
        dispatcher.utter_message(
            text=f"{entry.answer}\n\n需要的话,我帮您登记,请{helper(category)}联系您办理。要登记吗?",
            buttons=[
                {"title": "需要,帮我登记", "payload": "/affirm"},
                {"title": "不用了,谢谢", "payload": "/deny"},
            ],
        )
        return [
            SlotSet("request_next", "answered"),
            SlotSet("category", category),
            _offer(kind="guide", category=category, text=text),
        ]

    async def _open_form(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        category: str,
        text: str,
        *,
        from_offer: bool = False,
        rest: Sequence[Problem] = (),
    ) -> list[EventType]:
        events: list[EventType] = [
            *_clear_filled(tracker, REQUEST_SLOTS),
            SlotSet("category", category),
            SlotSet("offer", None),
            SlotSet("request_cancelled", None),
            SlotSet("fails", None),
            SlotSet("short_text", None),
            SlotSet("home", None),
        ]
        if rest:  # the other matters of the same message, offered once this one is registered
            events.append(_offer(kind="next", rest=[[p.category, p.text] for p in rest]))
        if len(fold(text)) >= MIN_DESCRIPTION:
            events.append(SlotSet("description", text))
        elif text and not from_offer:
            events.append(SlotSet("short_text", text))
        try:
            resident = await resident_of(tracker)
            RUNTIME.residents[channel_id(tracker.sender_id)] = resident.id
        except Exception as error:  # the database is down: still take the request, it is saved later
            log.warning("resident lookup failed", error=type(error).__name__)
            resident = None
        # Unknown while the database is away: told again rather than not at all (the request is saved
        # and later registered with their consent).
        if (resident is None or resident.consent_at is None) and not tracker.get_slot("privacy_told"):
            dispatcher.utter_message(text=PRIVACY_NOTICE)
            events.append(SlotSet("privacy_told", True))
        # What the message itself says (a long self-introduction gives phone, compound and address), NLU
        # entities where the text gave nothing, then what we remember about the resident. Only a building
        # written as one is an address: 今年78了 is an age.
        facts = await facts_of(text)
        if Urgency.URGENT in (facts.urgency, urgency_of(entity(tracker, "urgency"))):
            events.append(SlotSet("urgency", Urgency.URGENT.value))
        if phone := _valid_phone(facts.phone or entity(tracker, "phone")):
            events.append(SlotSet("phone", phone))
        elif resident is not None and resident.phone:
            events.append(SlotSet("phone", resident.phone))
        said = facts.community or entity(tracker, "community")
        compound = facts.compound or entity(tracker, "compound")
        place = facts.address
        if said or compound:
            if said:
                events.append(SlotSet("community", said))
            if compound:
                events.append(SlotSet("compound", compound))
            if place:
                events.append(SlotSet("address", place))
        elif (
            resident is not None
            and resident.community_id is not None
            and (home := await self._home_name(resident.community_id))
        ):
            events += [
                SlotSet("community", home),
                SlotSet("compound", SKIP),
                SlotSet("address", place or resident.address or SKIP),
                SlotSet("home", True),
            ]
        dispatcher.utter_message(
            text=f"好的,我来帮您登记「{category_name(RUNTIME.catalogue, category)}」方面的诉求。"
        )
        return [*events, SlotSet("request_next", "request")]

    async def _home_name(self, community_id: int) -> str | None:
        """The resident's home community, or None when the database stops answering (then asked)."""
        try:
            service = await _service()
            return await within(lambda: service.community_name(community_id))
        except Exception as error:
            log.warning("home community lookup failed", error=type(error).__name__)
            return None


# Small talk in the middle of a form is answered, and the form asks its question again.
REQUEST_SMALL_TALK = {
    SmallTalk.THANKS: "不客气!还差几个问题就登记好了。",
    SmallTalk.GOODBYE: "好的,您先忙。这次的诉求还没有登记完,方便的时候回来接着回答就行;不想登记了可以说“取消”。",
    SmallTalk.GREETING: "您好!我们接着登记您的诉求。",
}
FEEDBACK_SMALL_TALK = {
    SmallTalk.THANKS: "不客气!还有几个小问题就评价好了。",
    SmallTalk.GOODBYE: "好的,您先忙。评价还没有做完,方便的时候回来接着回答就行。",
    SmallTalk.GREETING: "您好!我们接着评价。",
}


class ValidateRequestForm(Guarded, FormValidationAction):
    def name(self) -> str:
        return "validate_request_form"

    async def required_slots(
        self,
        domain_slots: list[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[str]:
        if tracker.get_slot("request_cancelled"):
            return []  # the form ends at once; action_submit_request says it was cancelled
        return domain_slots

    def _fail(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, slot: str, message: str, explain: str
    ) -> dict[str, Any]:
        fails = dict(tracker.get_slot("fails") or {})
        fails[slot] = int(fails.get(slot, 0)) + 1
        if fails[slot] >= 2:
            dispatcher.utter_message(
                text=f"{explain}\n如果不方便在这里说清楚,也可以让社区工作人员直接联系您。",
                buttons=[HANDOFF_BUTTON, {"title": "取消这次登记", "payload": "取消"}],
            )
        else:
            dispatcher.utter_message(text=message)
        return {slot: None, "fails": fails}

    async def _answer(
        self, slot: str, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> dict[str, Any] | None:
        """What the resident's answer to the question of `slot` settles beyond a plain answer to it: small
        talk (answered, the question asked again), or facts for this and other questions ("我住锦江那边的金色雅园"
        to 哪个社区; a phone to 几栋几单元). None: read it as a plain answer to this question alone."""
        if not _is_answer(slot, value, tracker):
            return None  # prefilled before the form: a value, not something the resident just said
        found = await self._facts(value, tracker, also=slot)
        if not found and _answered_small_talk(value, dispatcher):
            return {slot: None}
        if slot in found:
            return found
        # It answers other questions only: none of its words belong to this one, which is asked again.
        return {**found, slot: None} if found else None

    async def _facts(self, value: Any, tracker: Tracker, also: str | None = None) -> dict[str, Any]:
        """The facts in an answer for the questions still open (and `also`, the one just asked)."""
        facts: dict[str, Any] = (await facts_of(str(value or ""))).slots()
        if "phone" in facts:
            facts["phone"] = _valid_phone(facts["phone"])  # a mistyped number is no phone
        return {k: v for k, v in facts.items() if v and (k == also or tracker.get_slot(k) is None)}

    def _cancelled(self, slot: str, value: Any, tracker: Tracker) -> dict[str, Any] | None:
        """The resident stops the request, in a word or a sentence ("算了 我还是自己找物业吧 不用登记了")."""
        if _is_answer(slot, value, tracker) and is_cancel(value):
            return {slot: None, "request_cancelled": True}
        return None

    async def validate_description(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if cancelled := self._cancelled("description", value, tracker):
            return cancelled
        text = " ".join(filter(None, [tracker.get_slot("short_text"), normalize(str(value or "")).strip()]))
        if len(fold(text)) < MIN_DESCRIPTION:
            if (answer := await self._answer("description", value, dispatcher, tracker)) is not None:
                return answer
            return self._fail(
                dispatcher,
                tracker,
                "description",
                "能再具体说说吗?比如什么东西出了问题、持续多久了、影响到谁。",
                "我们需要一句完整的描述才能安排人处理,例如:“3栋2单元楼道灯坏了一个星期,晚上看不见路”。",
            )
        # The description keeps all its words; the facts in it also answer the questions still open.
        return {**await self._facts(text, tracker), "description": text[:2000], "short_text": None}

    async def validate_community(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if cancelled := self._cancelled("community", value, tracker):
            return cancelled
        if (answer := await self._answer("community", value, dispatcher, tracker)) is not None:
            return answer
        known = await communities()
        name = match_community(str(value or ""), known)
        if name is None:
            names = "、".join(n for _, n in known)
            return self._fail(
                dispatcher,
                tracker,
                "community",
                f"没有找到这个社区,请从下面选择您所在的社区({names})。",
                f"我们需要知道您住在哪个社区,才能派给就近的工作人员。目前可以受理的社区有:{names}。",
            )
        # A resident picking another community than their known home: locate afresh.
        return {"community": name, "home": tracker.get_slot("home") and name == value}

    async def validate_compound(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if cancelled := self._cancelled("compound", value, tracker):
            return cancelled
        text = normalize(str(value or "")).strip()
        if text == SKIP or is_skip(text) or "其他" in text:
            return {"compound": SKIP}
        if (answer := await self._answer("compound", value, dispatcher, tracker)) is not None:
            return answer
        known = await compounds_of(str(tracker.get_slot("community") or ""))
        for name in known:
            if fold(name) in fold(text) or fold(text) == fold(name):
                return {"compound": name}
        if len(fold(text)) < 2:
            return self._fail(
                dispatcher,
                tracker,
                "compound",
                "请选择小区,或者直接写小区名称。",
                "小区名称能帮我们找到负责您那一片的网格员。不清楚的话点“其他 / 不清楚”就行。",
            )
        return {"compound": text[:50]}

    async def validate_address(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if cancelled := self._cancelled("address", value, tracker):
            return cancelled
        text = normalize(str(value or "")).strip()
        if not text or is_skip(text):
            return {"address": SKIP}
        if (answer := await self._answer("address", value, dispatcher, tracker)) is not None:
            return answer
        return {"address": text[:100]}

    async def validate_phone(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        text = normalize(str(value or "")).strip()
        # To "留个电话吗?" a bare 不用了 declines the phone, not the whole request (算了 / 取消 still cancel).
        if fold(text) in PHONE_DECLINED:
            return {"phone": SKIP}
        if cancelled := self._cancelled("phone", value, tracker):
            return cancelled
        if text == SKIP or is_skip(text):
            return {"phone": SKIP}
        if (answer := await self._answer("phone", value, dispatcher, tracker)) is not None:
            return answer
        try:
            return {"phone": normalize_phone(text)}
        except DomainError as error:
            return self._fail(
                dispatcher,
                tracker,
                "phone",
                error.message,
                "联系电话是为了让接单的工作人员能联系到您,例如 13912345678;不想留的话点“不留电话”。",
            )

    async def validate_urgency(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if cancelled := self._cancelled("urgency", value, tracker):
            return cancelled
        if (answer := await self._answer("urgency", value, dispatcher, tracker)) is not None:
            return answer
        found = urgency_of(str(value or ""))
        if found is None:
            return self._fail(
                dispatcher,
                tracker,
                "urgency",
                "请选择:急,还是不急?",
                "“急”是指有安全隐患或今天就要处理的(比如漏电、老人摔倒);其他情况选“不急”。",
            )
        return {"urgency": found.value}

    async def validate_confirm(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if cancelled := self._cancelled("confirm", value, tracker):
            return cancelled
        text = normalize(str(value or "")).strip()
        folded = fold(text)
        if "修改" in folded or "改" in folded or "不对" in folded or "错" in folded:
            if any(w in folded for w in ("电话", "手机", "号码")):
                phone = _valid_phone(phone_in(text))
                if phone:
                    return {"phone": phone, "confirm": None}
                return {"phone": None, "confirm": None}
            if any(w in folded for w in ("地址", "位置", "社区", "小区", "楼")):
                return {"community": None, "compound": None, "address": None, "home": None, "confirm": None}
            if any(w in folded for w in ("急", "紧急")):
                return {"urgency": None, "confirm": None}
            if any(w in folded for w in ("描述", "问题", "内容")):
                return {"description": None, "short_text": None, "confirm": None}
            dispatcher.utter_message(text="请问要修改哪一项?", buttons=_correction_buttons())
            return {"confirm": None}
        phone = _valid_phone(phone_in(text))
        if phone:
            return {"phone": phone, "confirm": None}
        if any(folded.startswith(w) for w in YES_WORDS):
            return {"confirm": "yes"}
        if _is_answer("confirm", value, tracker) and _answered_small_talk(value, dispatcher):
            return {"confirm": None}
        return self._fail(
            dispatcher,
            tracker,
            "confirm",
            "信息没问题的话请点“确认提交”,需要改哪一项就点对应的按钮。",
            "确认之后我们才会登记并派单。点“确认提交”即可;内容有误可以点“修改…”按钮。",
        )


def _answered_small_talk(
    value: Any, dispatcher: CollectingDispatcher, replies: dict[SmallTalk, str] = REQUEST_SMALL_TALK
) -> bool:
    """谢谢啦 / 拜拜 in the middle of a form: answered politely; the form asks its question again."""
    talk = small_talk(str(value or ""))
    if talk is not None:
        dispatcher.utter_message(text=replies[talk])
    return talk is not None


def _is_answer(slot: str, value: Any, tracker: Tracker) -> bool:
    """The value is what the resident just said to this question (not a value set before the form asked)."""
    said = normalize(str(tracker.latest_message.get("text") or "")).strip()
    # Rasa fills the slot with the text as typed and sends the message as the NLU normalised it.
    return (
        tracker.get_slot("requested_slot") == slot
        and isinstance(value, str)
        and normalize(value).strip() == said
    )


def _valid_phone(raw: str | None) -> str | None:
    """A phone as stored, or None when there is none or it is no real number."""
    if not raw:
        return None
    try:
        return normalize_phone(raw)
    except DomainError:
        return None


def _correction_buttons() -> list[dict[str, str]]:
    return [
        {"title": "确认提交", "payload": "确认"},
        {"title": "修改问题描述", "payload": "修改描述"},
        {"title": "修改地址", "payload": "修改地址"},
        {"title": "修改电话", "payload": "修改电话"},
        {"title": "修改紧急程度", "payload": "修改紧急程度"},
        {"title": "取消", "payload": "取消"},
    ]


class ActionAskCommunity(Guarded, Action):
    def name(self) -> str:
        return "action_ask_community"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        try:
            known = await communities()
        except Exception as error:  # the database is away: asked without the buttons
            log.warning("communities unavailable", error=type(error).__name__)
            dispatcher.utter_message(text="请问您住在哪个社区?请直接写社区名称。")
            return []
        dispatcher.utter_message(
            text="请问您住在哪个社区?",
            buttons=[{"title": name, "payload": name} for _, name in known],
        )
        return []


class ActionAskCompound(Guarded, Action):
    def name(self) -> str:
        return "action_ask_compound"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        try:
            names = await compounds_of(str(tracker.get_slot("community") or ""))
        except Exception as error:  # the database is away: asked without the compounds' buttons
            log.warning("compounds unavailable", error=type(error).__name__)
            names = []
        buttons = [{"title": n, "payload": n} for n in names] + [
            {"title": "其他 / 不清楚", "payload": "其他"}
        ]
        dispatcher.utter_message(text="在哪个小区?", buttons=buttons)
        return []


class ActionAskConfirm(Guarded, Action):
    """Reads the ticket back before it is registered."""

    def name(self) -> str:
        return "action_ask_confirm"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        slot = tracker.get_slot
        catalogue = RUNTIME.catalogue
        where = " ".join(v for v in (slot("community"), slot("compound"), slot("address")) if v and v != SKIP)
        phone = slot("phone")
        lines = [
            "请核对一下:",
            f"类别:{category_name(catalogue, slot('category'))}",
            f"问题:{slot('description')}",
            f"地点:{where or '未填写'}",
            f"联系电话:{mask_phone(phone) if phone and phone != SKIP else '不留'}",
            f"紧急程度:{'急' if slot('urgency') == 'urgent' else '不急'}",
            "没问题的话请点“确认提交”。",
        ]
        dispatcher.utter_message(text="\n".join(lines), buttons=_correction_buttons())
        return []


class ActionSubmitRequest(Guarded, Action):
    def name(self) -> str:
        return "action_submit_request"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        slot = tracker.get_slot
        done = [*_clear(REQUEST_SLOTS), SlotSet("request_cancelled", None), SlotSet("fails", None)]
        done += [SlotSet("short_text", None), SlotSet("requested_slot", None)]
        if slot("request_cancelled") or slot("confirm") != "yes":
            dispatcher.utter_message(text="好的,这次的诉求已取消,没有登记。有需要随时找我。")
            return [*done, *offer_next(dispatcher, _rest(tracker, "next"))]
        home = bool(slot("home"))
        request = PendingRequest(
            channel_id=channel_id(tracker.sender_id),
            category=str(slot("category") or "social_assistance"),
            text=str(slot("description")),
            community=None if home else _value(slot("community")),
            compound=None if home else _value(slot("compound")),
            address=_value(slot("address")),
            phone=_value(slot("phone")),
            urgency=str(slot("urgency") or "normal"),
        )
        try:
            service = await _service()
            intake = await within(lambda: register(service, request))
        except TooManyTickets as error:
            dispatcher.utter_message(text=error.message)
            return done
        except DomainError as error:
            dispatcher.utter_message(text=error.message, buttons=[HANDOFF_BUTTON])
            return done
        except Exception as error:  # database or dispatcher down, or too slow: keep it for a retry
            log.warning("request saved for retry", error=type(error).__name__)
            RUNTIME.save_for_retry(request)
            dispatcher.utter_message(text=SAVED_FOR_RETRY_TEXT)
            return [*done, *offer_next(dispatcher, _rest(tracker, "next"))]
        dispatcher.utter_message(text=await accepted_text(service, intake))
        if RUNTIME.pending.path.exists():  # the database answers again: register what was saved
            RUNTIME.background(RUNTIME.pending.replay(service))
        return [
            *done,
            SlotSet("ticket_number", intake.ticket.number),
            *offer_next(dispatcher, _rest(tracker, "next")),
        ]


def _rest(tracker: Tracker, kind: str) -> list[list[str]]:
    """The matters still to offer, kept in the offer of `kind`."""
    offer = offer_of(tracker)
    return list(offer.get("rest") or []) if offer.get("kind") == kind else []


def offer_next(dispatcher: CollectingDispatcher, rest: Sequence[Sequence[str]]) -> list[EventType]:
    """The next matter of a message that named several (ActionStartRequest): offered as its own ticket, the
    ones after it kept for later."""
    if not rest:
        return [SlotSet("offer", None)]
    (category, text), later = rest[0], rest[1:]
    dispatcher.utter_message(
        text=f"您刚才还说到「{text}」,这件事也帮您登记吗?",
        buttons=[
            {"title": "需要,帮我登记", "payload": "/affirm"},
            {"title": "不用了,谢谢", "payload": "/deny"},
        ],
    )
    return [_offer(kind="guide", category=category, text=text, rest=later)]


def _value(value: Any) -> str | None:
    return None if value in (None, "", SKIP) else str(value)


async def accepted_text(service: TicketService, intake: Intake) -> str:
    """What the resident is told at once: the number, when someone will contact them, and honestly
    whether a responder already has it."""
    ticket, now = intake.ticket, service.clock.now()
    status = Status(ticket.status)
    if intake.duplicate:
        return (
            f"您之前已经反映过这个问题(工单号 {ticket.number},当前状态:{ticket.progress_label})。"
            "这次补充的内容已经记到原工单里,不用重复登记,我们会尽快处理。"
        )
    head = f"已受理,工单号 {ticket.number},预计 {when(ticket.respond_by, now)} 前有人联系您。"
    if status == Status.DISPATCHED and ticket.assignee_id:
        names = await responder_names([ticket.assignee_id])
        return head + f"已派给{mask_name(names.get(ticket.assignee_id))},对方接单后会联系您。"
    if status == Status.DISPATCHED and ticket.dispatch_mode == DispatchMode.GRAB:
        return head + "已推送给附近的党员志愿者,有人接单后我们会告诉您是谁。"
    return head + (
        "目前没有值班的工作人员可以马上接单,已经通知社区工作人员,他们会尽快人工派单,派单后会告诉您。"
    )


# ------------------------------------------------------------------------------------- status


async def status_lines(service: TicketService, tickets: Sequence[Ticket]) -> list[str]:
    names = await responder_names([t.assignee_id for t in tickets])
    now = service.clock.now()
    lines = []
    for t in tickets:
        status = Status(t.status)
        line = f"{t.number} {category_name(service.catalogue, t.category)}:{t.progress_label}"
        if t.assignee_id:
            line += f",负责人 {mask_name(names.get(t.assignee_id))}"
        if status in (Status.CREATED, Status.DISPATCHED):
            line += f",预计 {when(t.respond_by, now)} 前联系您"
        elif status == Status.ACCEPTED:
            line += f",预计 {when(t.resolve_by, now)} 前办结"
        elif status == Status.RESOLVED:
            line += ",请您评价"
        lines.append(line)
    return lines


class ActionCheckStatus(Guarded, Action):
    def name(self) -> str:
        return "action_check_status"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        text = user_text(tracker)
        try:
            service = await _service()
            resident_id = await resident_id_of(tracker)
            match = NUMBER_RE.search(text)
            if match:
                number = match.group(0).upper()
                try:
                    ticket = await within(lambda: service.ticket(number, Actor.resident(resident_id)))
                except TicketNotFound:
                    dispatcher.utter_message(text=f"没有找到您名下的工单 {number},请核对一下工单号。")
                    return []
                if any(w in text for w in ("撤销", "取消", "不要了", "不用了", "不办了")):
                    return await cancel_ticket(dispatcher, resident_id, number)
                shown: Sequence[Ticket] = [ticket]
            else:
                recent = await within(lambda: service.tickets_of_resident(resident_id, limit=10))
                open_ones = [t for t in recent if Status(t.status).is_open or t.status == Status.RESOLVED]
                shown = open_ones or list(recent[:3])
        except Exception as error:
            if isinstance(error, DomainError):
                dispatcher.utter_message(text=error.message)
                return []
            log.warning("status query failed", error=type(error).__name__)
            dispatcher.utter_message(text="系统暂时查询不到,请稍后再试,或说“转人工”。")
            return []
        if not shown:
            dispatcher.utter_message(
                text="您目前还没有登记过诉求。需要帮忙的话直接说说遇到的问题就行。",
                buttons=category_buttons(service.catalogue),
            )
            return []
        header = "您的工单:" if len(shown) > 1 else "您的工单情况:"
        events: list[EventType] = []
        buttons = []
        focus = shown[0] if len(shown) == 1 else None
        if focus is not None and focus.status in (Status.CREATED, Status.DISPATCHED):
            # Only the way to withdraw it: nothing was asked, so there is nothing to "continue".
            buttons = [{"title": "撤销这个诉求", "payload": "/deny"}]
            events.append(_offer(kind="cancel", number=focus.number))
        elif focus is not None and focus.status == Status.RESOLVED:
            buttons = [{"title": "去评价", "payload": "/feedback"}]
        dispatcher.utter_message(
            text=header + "\n" + "\n".join(await status_lines(service, shown)), buttons=buttons
        )
        if focus is not None:
            events.append(SlotSet("ticket_number", focus.number))
        return events


async def cancel_ticket(dispatcher: CollectingDispatcher, resident_id: int, number: str) -> list[EventType]:
    try:
        service = await _service()
        await within(lambda: service.cancel(number, resident_id, "居民在对话中撤销"))
    except TicketNotFound:
        dispatcher.utter_message(text=f"没有找到您名下的工单 {number}。")
        return [SlotSet("offer", None)]
    except DomainError as error:
        dispatcher.utter_message(text=f"抱歉,{error.message}")
        return [SlotSet("offer", None)]
    except Exception as error:
        log.warning("cancel failed", error=type(error).__name__)
        dispatcher.utter_message(text=f"抱歉,系统暂时有点忙,工单 {number} 还没有撤销,请稍后再试。")
        return []
    dispatcher.utter_message(text=f"好的,工单 {number} 已撤销。有需要随时再找我们。")
    return [SlotSet("offer", None), SlotSet("ticket_number", None)]


class ActionHandleDeny(Guarded, Action):
    """A no outside a form: declines what we offered last (guide help, or keeps cancelling a ticket)."""

    def name(self) -> str:
        return "action_handle_deny"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        offer = offer_of(tracker)
        text = user_text(tracker)
        match = NUMBER_RE.search(text)
        number = match.group(0).upper() if match else None
        # The status answer's 撤销 button (a payload: no typed text), or typed words that say so. A bare "不用了"
        # after a status answer is a no-thanks: nothing was asked, so it never withdraws the ticket.
        if (
            offer.get("kind") == "cancel"
            and not match
            and (not text or any(w in text for w in WITHDRAW_WORDS))
        ):
            number = offer.get("number")
        if number:
            try:
                resident_id = await resident_id_of(tracker)
            except Exception:
                dispatcher.utter_message(text="系统暂时忙,请稍后再试。")
                return []
            return await cancel_ticket(dispatcher, resident_id, number)
        if offer.get("kind") == "emergency":
            dispatcher.utter_message(text="好的,请注意安全。情况有变化随时告诉我,危急时请直接拨打电话求助。")
            return [SlotSet("offer", None)]
        # Not this one, but the other matters the same message named are still offered.
        if rest := _rest(tracker, "guide"):
            dispatcher.utter_message(text="好的,这件先不登记。")
            return offer_next(dispatcher, rest)
        dispatcher.utter_message(text="好的。还有其他需要帮忙的吗?")
        return [SlotSet("offer", None)]


# ---------------------------------------------------------------------------------- 回访 (feedback)


class ActionStartFeedback(Guarded, Action):
    def name(self) -> str:
        return "action_start_feedback"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        text = user_text(tracker)
        answered: list[EventType] = [SlotSet("request_next", "answered")]
        try:
            service = await _service()
            resident_id = await resident_id_of(tracker)
            recent = await within(lambda: service.tickets_of_resident(resident_id, limit=20))
        except Exception:
            dispatcher.utter_message(text="系统暂时忙,请稍后再试。")
            return answered
        match = NUMBER_RE.search(text)
        if match:
            chosen = [t for t in recent if t.number == match.group(0).upper()]
        else:
            chosen = [t for t in recent if t.status == Status.RESOLVED]
        if not chosen or chosen[0].status != Status.RESOLVED:
            open_ones = [t for t in recent if Status(t.status).is_open]
            if open_ones:
                dispatcher.utter_message(
                    text="您的诉求还在办理中,办结后我们会请您评价。当前进度:\n"
                    + "\n".join(await status_lines(service, open_ones[:3])),
                    buttons=[HANDOFF_BUTTON],
                )
            else:
                dispatcher.utter_message(text="您目前没有需要评价的工单。谢谢您的关心!")
            return answered
        ticket = chosen[0]
        events: list[EventType] = [
            *_clear_filled(tracker, FEEDBACK_SLOTS),
            SlotSet("fb_ticket", ticket.number),
            SlotSet("request_next", "feedback"),
        ]
        if rating := rating_of(text):
            events.append(SlotSet("fb_rating", rating))
        dispatcher.utter_message(
            text=f"谢谢您愿意评价工单 {ticket.number}({category_name(service.catalogue, ticket.category)}),"
            "一共三个小问题。"
        )
        return events


class ValidateFeedbackForm(Guarded, FormValidationAction):
    def name(self) -> str:
        return "validate_feedback_form"

    def _also_said(self, tracker: Tracker, value: Any, asked: str) -> dict[str, Any]:
        """The other 回访 answers the same message gives ("联系过了 但是没解决"), for questions not answered yet."""
        facts = feedback_facts(str(value or ""))
        said = {
            "fb_contacted": None if facts.contacted is None else ("yes" if facts.contacted else "no"),
            "fb_solved": None if facts.solved is None else ("yes" if facts.solved else "no"),
            "fb_rating": None if facts.rating is None else facts.rating.value,
        }
        return {
            slot: answer
            for slot, answer in said.items()
            if slot != asked and answer is not None and tracker.get_slot(slot) is None
        }

    def _yes_no_answer(
        self, slot: str, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, ask_again: str
    ) -> dict[str, Any]:
        facts = feedback_facts(str(value or ""))
        own = facts.contacted if slot == "fb_contacted" else facts.solved
        answer = own if own is not None else yes_no(str(value or ""))
        if answer is None and _answered_small_talk(value, dispatcher, FEEDBACK_SMALL_TALK):
            return {slot: None}
        if answer is None:
            dispatcher.utter_message(text=ask_again)
            return {slot: None}
        return {slot: "yes" if answer else "no", **self._also_said(tracker, value, slot)}

    async def validate_fb_contacted(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return self._yes_no_answer(
            "fb_contacted", value, dispatcher, tracker, "请选择:联系过,还是没有联系过?"
        )

    async def validate_fb_solved(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return self._yes_no_answer("fb_solved", value, dispatcher, tracker, "请选择:问题解决了,还是没有解决?")

    async def validate_fb_rating(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        rating = rating_of(str(value or ""))  # the code when prefilled, 滿意 as typed
        if rating is None and _answered_small_talk(value, dispatcher, FEEDBACK_SMALL_TALK):
            return {"fb_rating": None}
        if rating is None:
            dispatcher.utter_message(text="请选择:满意、基本满意,还是不满意?")
            return {"fb_rating": None}
        return {"fb_rating": rating.value}


class ActionSubmitFeedback(Guarded, Action):
    def name(self) -> str:
        return "action_submit_feedback"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        slot = tracker.get_slot
        done = [*_clear(FEEDBACK_SLOTS), SlotSet("fb_ticket", None), SlotSet("requested_slot", None)]
        number = str(slot("fb_ticket") or "")
        try:
            service = await _service()
            resident_id = await resident_id_of(tracker)
            ticket = await within(
                lambda: service.rate(
                    number,
                    resident_id,
                    contacted=slot("fb_contacted") == "yes",
                    solved=slot("fb_solved") == "yes",
                    rating=str(slot("fb_rating")),
                )
            )
        except DomainError as error:
            dispatcher.utter_message(text=error.message)
            return done
        except Exception as error:
            log.warning("feedback failed", error=type(error).__name__)
            dispatcher.utter_message(text="抱歉,评价暂时没有保存成功,请稍后再试,或说“转人工”。")
            return done
        if Status(ticket.status) == Status.CLOSED:
            # Closing keeps the assignee: who resolved it is who is thanked.
            names = await responder_names([ticket.assignee_id])
            who = mask_name(names.get(ticket.assignee_id or 0))
            dispatcher.utter_message(text=f"谢谢您的评价!我们会把您的认可转告给{who},工单 {number} 已结案。")
        else:
            dispatcher.utter_message(
                text=f"很抱歉没有让您满意。工单 {number} 已重新办理({ticket.progress_label}),"
                "社区会另外安排人员跟进,并尽快联系您。"
            )
        return done


# ---------------------------------------------------------------------------------------- 转人工


class ActionHandoff(Guarded, Action):
    def name(self) -> str:
        return "action_handoff"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        # A form the hand-off ended leaves its answers: cleared now, or the next form would validate them.
        ended = _clear_filled(tracker, [*REQUEST_SLOTS, *FEEDBACK_SLOTS])
        community = entity(tracker, "community")  # the button of the community question carries it
        if not community:
            said = tracker.get_slot("community")
            community = str(said) if said and said != SKIP else None
        if not community:  # named earlier in the conversation ("我是锦江社区的"), then 转人工
            for who, text in reversed(conversation(tracker)):
                if who == "居民" and (community := await named_community(text)):
                    break
        return [*ended, *await hand_off(dispatcher, tracker, community)]


class ActionHandoffCommunity(ActionHandoff):
    """The reply to the hand-off's community question when the NLU could not place it (a typed community
    name): the same hand-off, under its own name for the rules (nlu/dialogue/rules.yml)."""

    def name(self) -> str:
        return "action_handoff_community"


async def staff_named(ticket: Ticket) -> str:
    """社区工作人员周*: the staff member the ticket went to, masked, or just the role."""
    if not ticket.assignee_id:
        return "社区工作人员"
    names = await responder_names([ticket.assignee_id])
    return f"社区工作人员{mask_name(names.get(ticket.assignee_id))}"


def conversation(tracker: Tracker) -> list[tuple[str, str]]:
    """The recent conversation as (居民 or 助手, text); button payloads are not the resident's words."""
    lines = []
    for event in tracker.events[-60:]:
        text = str(event.get("text") or "").strip()
        if not text or text.startswith("/"):
            continue
        if event.get("event") == "user":
            lines.append(("居民", text))
        elif event.get("event") == "bot":
            lines.append(("助手", text))
    return lines


async def hand_off(
    dispatcher: CollectingDispatcher, tracker: Tracker, community: str | None
) -> list[EventType]:
    """转人工: a ticket for the community staff with the conversation so far. A resident whose community is not
    known is asked for it, with buttons that hand over at once (a typed name does too)."""
    lines = [f"{who}:{text}" for who, text in conversation(tracker)]
    transcript = "\n".join(lines[-30:]) or "居民要求转人工。"
    request = PendingRequest(
        channel_id=channel_id(tracker.sender_id),
        category=str(tracker.get_slot("category") or ""),
        text=scrub(clean_text(transcript)),  # phones and ID numbers masked before it is kept anywhere
        community=community,
        kind="handoff",
    )
    try:
        service = await _service()
        ticket = (await within(lambda: register(service, request))).ticket
    except DomainError as error:
        if request.community is not None:  # refused for another reason: say which
            dispatcher.utter_message(text=error.message)
            return [SlotSet("offer", None), SlotSet("handoff_waiting", None)]
        try:
            known = await communities()
        except Exception:
            known = []
        asked = tracker.get_slot("handoff_waiting")  # this is the reply to the question: say so, not "好的"
        dispatcher.utter_message(
            text="抱歉,没认出是哪个社区。请点一下您住的社区,马上为您转给那里的工作人员。"
            if asked
            else "好的,马上为您找社区工作人员。请问您住在哪个社区?点一下就为您转过去。",
            buttons=[
                {
                    "title": name,
                    "payload": "/human_handoff" + json.dumps({"community": name}, ensure_ascii=False),
                }
                for _, name in known
            ],
        )
        return [_offer(kind="handoff"), SlotSet("handoff_waiting", True)]
    except Exception as error:  # database down or too slow: kept, handed over once it is back
        log.warning("handoff saved for retry", error=type(error).__name__)
        RUNTIME.save_for_retry(request)
        dispatcher.utter_message(
            text=HANDOFF_SAVED_TEXT if request.community else HANDOFF_SAVED_UNPLACED_TEXT
        )
        return [SlotSet("offer", None), SlotSet("handoff_waiting", None)]
    who = await staff_named(ticket)
    dispatcher.utter_message(
        text=f"已为您转给{who},工单号 {ticket.number},"
        f"预计 {when(ticket.respond_by, service.clock.now())} 前会联系您。刚才的对话内容已一并转交,不用再说一遍。"
    )
    return [SlotSet("ticket_number", ticket.number), SlotSet("offer", None), SlotSet("handoff_waiting", None)]


class ActionFallback(Guarded, Action):
    """Out of scope and low confidence: say so politely and offer the categories."""

    def name(self) -> str:
        return "action_fallback"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        catalogue = RUNTIME.catalogue
        if offer_of(tracker).get("kind") == "handoff" and (
            community := await named_community(user_text(tracker))
        ):
            return await hand_off(dispatcher, tracker, community)  # the community the hand-off asked for
        if intent_of(tracker) == "out_of_scope":
            text = "这个问题我帮不上忙,我主要负责社区服务。其他问题可以拨打 12345 市民热线。"
        else:
            text = ""  # utter_default has said it did not understand
        dispatcher.utter_message(
            text=text + "您可以直接说遇到的问题,或者选一类:", buttons=category_buttons(catalogue)
        )
        return []


# ---------------------------------------------------------------------------------- 紧急求助 (emergency)

EMERGENCY_YES = "是,请社区马上联系我"
EMERGENCY_NO = "不用了"


def _form_just_ended(tracker: Tracker) -> bool:
    """The emergency rule has just ended a form (a request being registered is dropped)."""
    for event in reversed(tracker.events[-6:]):
        if event.get("event") == "user":
            return False
        if event.get("event") == "active_loop" and event.get("name") is None:
            return True
    return False


class ActionEmergency(Guarded, Action):
    """After utter_emergency (the numbers, said by Rasa itself): offer an urgent ticket to the community staff.
    A resident whose community is not known yet picks it on the yes button itself."""

    def name(self) -> str:
        return "action_emergency"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        kind = str(tracker.get_slot("emergency_kind") or "")
        offer = offer_of(tracker)
        earlier = offer.get("text") if offer.get("kind") == "emergency" else None
        text = " ".join(filter(None, [earlier, user_text(tracker)]))[-1000:]
        lead = "刚才正在登记的诉求先停下了,等您安全了随时可以再说。\n" if _form_just_ended(tracker) else ""
        yes = [{"title": EMERGENCY_YES, "payload": "/affirm"}]
        try:
            resident = await resident_of(tracker)
            RUNTIME.residents[channel_id(tracker.sender_id)] = resident.id
            if resident.community_id is None:
                known = await communities()
                yes = [
                    {
                        "title": f"是,我住{name}",
                        "payload": "/affirm" + json.dumps({"community": name}, ensure_ascii=False),
                    }
                    for _, name in known
                ] or yes
        except Exception as error:  # the numbers are given already; the ticket is tried on the yes
            log.warning("emergency: resident lookup failed", error=type(error).__name__)
        dispatcher.utter_message(
            text=lead + "需要我马上通知社区工作人员和网格员吗?他们会尽快联系您、赶来帮忙。",
            buttons=[*yes, {"title": EMERGENCY_NO, "payload": "/deny"}],
        )
        return [
            *_moved_on(tracker),
            *_clear_filled(tracker, [*REQUEST_SLOTS, *FEEDBACK_SLOTS]),  # of the form this ended, if any
            _offer(kind="emergency", emergency=kind or None, text=text or "居民发来紧急求助"),
        ]


async def create_emergency(
    dispatcher: CollectingDispatcher, tracker: Tracker, offer: dict[str, Any]
) -> list[EventType]:
    """The yes to the emergency offer: the urgent ticket (tickets.intake `emergency`), or, with the database
    down, saved for the retry and said so, with the numbers again."""
    guide = RUNTIME.catalogue.emergencies  # not the database: the numbers are said even when it is down
    kind = guide.kind(offer.get("emergency")) if guide else None
    numbers = "、".join(kind.numbers) if kind else "110、119、120"
    text = str(offer.get("text") or "居民发来紧急求助")
    community = entity(tracker, "community")
    try:
        service = await _service()
        resident_id = await resident_id_of(tracker)
        if community:
            await within(lambda: service.remember_resident(resident_id, community=community))
        intake = await within(lambda: service.emergency(resident_id, text, offer.get("emergency")))
    except DomainError as error:  # the community is not known: ask for it, the offer stays
        try:
            known = await communities()
        except Exception:
            known = []
        dispatcher.utter_message(
            text=f"{error.message}(危急时请先拨打 {numbers}。)",
            buttons=[
                {
                    "title": f"我住{name}",
                    "payload": "/affirm" + json.dumps({"community": name}, ensure_ascii=False),
                }
                for _, name in known
            ],
        )
        return []
    except Exception as error:  # database or dispatch down, or too slow: saved for the retry
        log.warning("emergency saved for retry", error=type(error).__name__)
        category = guide.category if guide else "emergency"
        RUNTIME.save_for_retry(
            PendingRequest(
                channel_id(tracker.sender_id), category, text, community=community, urgency="urgent"
            )
        )
        dispatcher.utter_message(
            text=f"抱歉,系统暂时没能马上通知到社区,恢复后会自动转给社区工作人员。情况紧急请直接拨打 {numbers}。"
        )
        return [SlotSet("offer", None)]
    ticket = intake.ticket
    if intake.duplicate:
        dispatcher.utter_message(
            text=f"您的紧急求助(工单 {ticket.number})社区已经在处理,刚才说的情况已经补充进去,他们会尽快联系您。"
        )
    else:
        who = await staff_named(ticket)
        dispatcher.utter_message(
            text=f"已通知{who}和网格员,紧急求助工单 {ticket.number},他们会尽快联系您。"
            f"还没打 {numbers} 的话,请先打电话。"
        )
    return [SlotSet("offer", None), SlotSet("ticket_number", ticket.number)]
