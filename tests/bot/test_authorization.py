"""Authorization matrix: every command and button × every role, each allowed or refused as designed.

Roles: the resident who owns the tickets (5001), the volunteer of this community who is offered / assigned
them (1001, vol-a1), a grid worker of the same community who is neither (1004, grid-a1: sees the tickets,
may not work them), a volunteer of another community (2001, vol-j1), the community's staff (3001,
staff-a) and a stranger (9001). Actions that change a ticket run their refused roles first.

What counts as refused is what the bot itself says it did, not the wording of its reply: every refusal
goes through bot.common.guarded, which answers with the error's polite message and logs a `refused` event
with the error's code. An allowed action answers, with no `refused` event and no failure logged; a refused
one logs `refused` for a permission reason (not allowed, or a ticket the actor may not see is "not found")
and still answers with a message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from structlog.testing import capture_logs

from tests.bot.conftest import OTHER_VOLUNTEER, RESIDENT, STAFF, STRANGER, VOLUNTEER, Telegram
from tests.bot.fake_api import Call
from tests.conftest import Org
from tickets.errors import IllegalTransition, NotAllowed, TicketNotFound
from tickets.models import Rating, Status
from tickets.service import NewTicket

COLLEAGUE = 1004

ROLES = {
    "resident": RESIDENT,
    "volunteer": VOLUNTEER,
    "colleague": COLLEAGUE,
    "other_volunteer": OTHER_VOLUNTEER,
    "staff": STAFF,
    "stranger": STRANGER,
}
EVERYONE = set(ROLES)
RESPONDERS = {"volunteer", "colleague", "other_volunteer", "staff"}
# Why a role is refused: it may not do this, or it may not even see the ticket (which the domain answers
# as "not found", so that a ticket's existence does not leak to other communities).
PERMISSION = {NotAllowed.code, TicketNotFound.code}

# command: roles allowed
COMMANDS = {
    "/start": EVERYONE,
    "/help": EVERYONE,
    "/mytickets": EVERYONE,
    "/my": RESPONDERS,
    "/duty": RESPONDERS,
    "/points": RESPONDERS,
    "/queue": {"staff"},
    "/overdue": {"staff"},
    "/stats": {"staff"},
    "/health": {"staff"},
}
# button on the accepted ticket: roles allowed (conversation entries are cancelled after)
CARD_BUTTONS = {
    "call": {"volunteer", "staff"},
    "note": {"volunteer"},
    "ret": {"volunteer"},
    "done": {"volunteer"},
    "msg": {"volunteer"},
    "card": {"staff"},
    "pick": {"staff"},
    "dec": {"volunteer", "colleague", "staff"},  # only shows the reasons; declining itself is checked below
}


@dataclass
class Outcome:
    """What the bot did for one action: the Bot API calls it made and the events it logged."""

    calls: list[Call]
    logged: list[dict[str, Any]]

    @property
    def answered(self) -> bool:
        return any(c.method in ("sendMessage", "answerCallbackQuery", "editMessageText") for c in self.calls)

    @property
    def told_why(self) -> bool:
        return any(c.method in ("sendMessage", "answerCallbackQuery") and c.text for c in self.calls)

    @property
    def refusals(self) -> list[dict[str, Any]]:
        return [e for e in self.logged if e["event"] == "refused"]

    @property
    def failures(self) -> list[dict[str, Any]]:
        return [e for e in self.logged if e["log_level"] in ("error", "critical")]

    def verdict(self, allowed: bool) -> str | None:
        """None when the outcome is as designed, else what went wrong."""
        if self.failures:
            return f"failed: {self.failures}"
        if allowed:
            if self.refusals:
                return f"refused: {self.refusals}"
            return None if self.answered else "no answer"
        if not any(e["code"] in PERMISSION for e in self.refusals):
            return f"not refused for a permission reason (refusals: {self.refusals})"
        return None if self.told_why else "refused without a message"


async def run(tg: Telegram, role: str, action: str) -> Outcome:
    user = ROLES[role]
    before = len(tg.api.calls)
    with capture_logs() as logged:
        if action.startswith("/"):
            await tg.say(user, action)
        else:
            await tg.press(user, action)
    outcome = Outcome(tg.api.calls[before:], logged)
    await tg.say(user, "/cancel")  # leave any conversation the button opened
    return outcome


async def check(tg: Telegram, action: str, allowed: set[str], order: list[str] | None = None) -> list[str]:
    """Returns the mismatches as readable lines (empty when the matrix holds)."""
    wrong = []
    for role in order or list(ROLES):
        outcome = await run(tg, role, action)
        expected = "allowed" if role in allowed else "refused"
        problem = outcome.verdict(role in allowed)
        if problem is not None:
            wrong.append(f"{action} by {role}: expected {expected}, {problem}; calls {outcome.calls}")
    return wrong


async def test_every_command_and_button_for_every_role(roles: Telegram, org: Org) -> None:
    tg = roles
    await tg.bind(COLLEAGUE, "grid-a1")
    me = await org.service.resident_for(f"telegram:{RESIDENT}")
    await org.service.remember_resident(me.id, community="anju", compound="安居苑", phone="13912345678")
    accepted = await org.service.create_ticket(NewTicket(me.id, "facility_repair", "路灯坏了"))
    await org.service.reassign(accepted.number, org["staff-a"], org["vol-a1"], "熟悉情况")
    await org.service.accept(accepted.number, org["vol-a1"])
    offered = await org.service.create_ticket(NewTicket(me.id, "eldercare", "助餐"))
    declined = await org.service.create_ticket(NewTicket(me.id, "eldercare", "陪诊"))
    rated = await org.service.create_ticket(NewTicket(me.id, "environment", "垃圾没人收"))
    await org.service.reassign(rated.number, org["staff-a"], org["vol-a1"], "熟悉情况")
    await org.service.accept(rated.number, org["vol-a1"])
    await org.service.resolve(rated.number, org["vol-a1"], "已清理")

    wrong: list[str] = []
    for command, allowed in COMMANDS.items():
        wrong += await check(tg, command, allowed)
    for prefix, allowed in CARD_BUTTONS.items():
        wrong += await check(tg, f"{prefix}:{accepted.number}", allowed)
    refused_first = ["resident", "stranger", "other_volunteer", "colleague", "staff", "volunteer"]
    wrong += await check(tg, f"decr:{declined.number}:0", {"volunteer"}, refused_first)
    wrong += await check(tg, f"acc:{offered.number}", {"volunteer"}, refused_first)
    assignees = [
        p for p in await org.service.assignable(accepted.number, org["staff-a"]) if p.code == "vol-a3"
    ]
    wrong += await check(tg, f"asg:{accepted.number}:{assignees[0].id}", {"staff"}, refused_first)
    rating_order = ["stranger", "volunteer", "colleague", "other_volunteer", "staff", "resident"]
    wrong += await check(tg, f"fb:{rated.number}:11s", {"resident"}, rating_order)
    assert wrong == [], "\n".join(wrong)

    assert (await org.service.ticket(offered.number, org.service_actor)).assignee_id == org["vol-a1"]
    assert (await org.service.ticket(accepted.number, org.service_actor)).assignee_id == org["vol-a3"]
    assert (await org.service.ticket(rated.number, org.service_actor)).status == Status.CLOSED


async def test_a_volunteer_of_another_community_never_sees_the_ticket(roles: Telegram, org: Org) -> None:
    me = await org.service.resident_for(f"telegram:{RESIDENT}")
    await org.service.remember_resident(me.id, community="anju", phone="13912345678")
    ticket = await org.service.create_ticket(NewTicket(me.id, "legal_aid", "工资被拖欠 13912345678"))
    for prefix in ("call", "note", "card", "acc"):
        calls = await roles.press(OTHER_VOLUNTEER, f"{prefix}:{ticket.number}")
        assert not any("工资" in str(c.params) or "13912345678" in str(c.params) for c in calls)


async def test_a_refusal_is_logged_with_its_reason_and_nothing_personal(roles: Telegram, org: Org) -> None:
    """The `refused` event names the handler and the error, never the ticket, the user or what they wrote."""
    me = await org.service.resident_for(f"telegram:{RESIDENT}")
    await org.service.remember_resident(me.id, community="anju", phone="13912345678")
    ticket = await org.service.create_ticket(NewTicket(me.id, "legal_aid", "工资被拖欠 13912345678"))
    with capture_logs() as logged:
        calls = await roles.press(STRANGER, f"call:{ticket.number}")
    assert logged == [
        {
            "event": "refused",
            "log_level": "info",
            "handler": "reveal_phone",
            "error": "NotAllowed",
            "code": "not_allowed",
        }
    ]
    assert roles.answers(calls) and "13912345678" not in str(calls)


async def test_who_sees_the_residents_phone_open_and_after_close(roles: Telegram, org: Org) -> None:
    """查看居民电话 through the bot follows TicketService.reveal_phone: the assignee and the community's staff
    while it is open (each reveal recorded), nobody else, and nobody once it is closed."""
    tg = roles
    same_community, other_staff = 1002, 3002
    await tg.bind(same_community, "vol-a2")
    await tg.bind(other_staff, "staff-j")
    me = await org.service.resident_for(f"telegram:{RESIDENT}")
    await org.service.remember_resident(me.id, community="anju", compound="安居苑", phone="13912345678")
    ticket = await org.service.create_ticket(NewTicket(me.id, "facility_repair", "路灯坏了"))
    await org.service.reassign(ticket.number, org["staff-a"], org["vol-a1"], "熟悉情况")
    await org.service.accept(ticket.number, org["vol-a1"])

    async def sees_phone(user: int) -> bool:
        """True when the number is shown; otherwise the user must have been told why not."""
        with capture_logs() as logged:
            calls = await tg.press(user, f"call:{ticket.number}")
        if "13912345678" in " ".join(str(c.params.get("text") or "") for c in calls):
            return True
        reasons = {e.get("code") for e in logged if e["event"] == "refused"}
        assert reasons & {*PERMISSION, IllegalTransition.code}, (user, logged)  # refused, and told why
        return False

    assert await sees_phone(VOLUNTEER)  # the assignee
    assert await sees_phone(STAFF)  # the community's staff
    for user in (same_community, other_staff, OTHER_VOLUNTEER, RESIDENT, STRANGER):
        assert not await sees_phone(user), user
    events = await org.service.history(ticket.number, org.service_actor)
    assert [(e.actor, e.data) for e in events if e.action == "reveal_phone"] == [
        (f"responder:{org['vol-a1']}", {"role": "assignee"}),
        (f"responder:{org['staff-a']}", {"role": "staff"}),
    ]

    card = await tg.press(STAFF, f"card:{ticket.number}")  # staff get the button on the card
    assert ("查看居民电话", f"call:{ticket.number}") in [b for c in card for b in c.buttons]

    await org.service.resolve(ticket.number, org["vol-a1"], "已修好")
    await org.service.rate(ticket.number, me.id, contacted=True, solved=True, rating=Rating.SATISFIED)
    for user in (VOLUNTEER, STAFF, same_community, other_staff, OTHER_VOLUNTEER, RESIDENT):
        assert not await sees_phone(user), user
