"""Volunteers and other responders: /join CODE binds the Telegram account, offers are taken (接单) or declined
(不接) from their buttons, /my lists their tickets as cards (call or message the resident, add a note, return
with a reason, 办结 with a note) and the offers they may still take, /duty toggles 在岗 / 休息, /points shows
爱心积分. Unknown users get none of it."""

from __future__ import annotations

import warnings
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from telegram import InlineKeyboardMarkup, Update
from telegram.ext import (
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
    filters,
)
from telegram.warnings import PTBUserWarning

from bot.common import (
    CHANNEL,
    NOT_REGISTERED,
    App,
    Context,
    Minhu,
    deps,
    guarded,
    is_staff,
    keyboard,
    responder_of,
    say,
    when,
)
from tickets.actors import Actor
from tickets.errors import AlreadyTaken, NotAllowed
from tickets.models import Responder, Status, Ticket, split_channel_id
from tickets.privacy import mask_phone, scrub
from tickets.service import TicketService

POINT_REASONS = {
    "rated_satisfied": "居民评价满意",
    "rated_basic": "居民评价基本满意",
    "auto_closed": "办结后自动结案",
}
DECLINE_REASONS = ("时间冲突,来不及", "不在附近", "不擅长这类事")
TAKEN = "工单 {number} 已被他人接单,谢谢您的热心!"
NOTE, RETURN_REASON, RESOLVE_NOTE, MESSAGE_RESIDENT = range(4)
PROMPTS = {
    "note": (NOTE, "请输入要添加的备注(发送 /cancel 取消):"),
    "ret": (RETURN_REASON, "请说明退回的原因,我们会告知居民(发送 /cancel 取消):"),
    "done": (RESOLVE_NOTE, "请简要写一下办理结果,居民会收到回访(发送 /cancel 取消):"),
    "msg": (MESSAGE_RESIDENT, "请输入要发给居民的话(发送 /cancel 取消):"),
}


async def need_responder(update: Update, context: Context) -> Responder:
    responder = await responder_of(update, context)
    if responder is None:
        raise NotAllowed(NOT_REGISTERED)
    return responder


def describe(minhu: Minhu, ticket: Ticket, viewer: Responder, *, heading: str = "") -> str:
    """A ticket as a responder sees it. Sensitive categories show a summary only until the viewer has accepted
    it (staff see everything); phones in the text are masked for anyone else; the contact phone is always
    masked here (the assignee, and the area's staff while it is open, reveal it with a button)."""
    category = minhu.service.catalogue.get(ticket.category)
    accepted = ticket.assignee_id == viewer.id and ticket.status not in (Status.CREATED, Status.DISPATCHED)
    trusted = accepted or is_staff(viewer)
    text = ticket.text if trusted or not category.sensitive else f"({category.name}类诉求,接单后可见详情)"
    lines = [
        heading or f"工单 {ticket.number}",
        f"类别:{category.name}{'(紧急)' if ticket.urgency == 'urgent' else ''}",
        f"状态:{Status(ticket.status).label}",
        f"地点:{(ticket.address or '未填写') if trusted or not category.sensitive else '接单后可见'}",
        f"响应时限:{when(ticket.respond_by, minhu.tz)}  办结时限:{when(ticket.resolve_by, minhu.tz)}",
        f"内容:{text if trusted else scrub(text)}",
    ]
    if ticket.contact_phone:
        lines.append(f"居民电话:{mask_phone(ticket.contact_phone)}")
    return "\n".join(lines)


def take_buttons(number: str) -> InlineKeyboardMarkup:
    return keyboard([[("接单", f"acc:{number}"), ("不接", f"dec:{number}")]])


def card_buttons(ticket: Ticket, viewer: Responder) -> InlineKeyboardMarkup | None:
    number = ticket.number
    if ticket.assignee_id != viewer.id:
        return None
    if ticket.status == Status.DISPATCHED:
        return take_buttons(number)
    if ticket.status != Status.ACCEPTED:
        return None
    return keyboard(
        [
            [("查看居民电话", f"call:{number}"), ("给居民留言", f"msg:{number}")],
            [("添加备注", f"note:{number}"), ("退回", f"ret:{number}"), ("办结", f"done:{number}")],
        ]
    )


async def offer_card(minhu: Minhu, ticket: Ticket, viewer: Responder) -> tuple[str, InlineKeyboardMarkup]:
    """An offer (抢单) as the volunteer sees it, delivered or listed under /my: what, where, 接单 / 不接."""
    place = await minhu.service.place_of(ticket)
    heading = f"📋 新工单 {ticket.number}(先接先得)\n区域:{place}"
    return describe(minhu, ticket, viewer, heading=heading), take_buttons(ticket.number)


# ------------------------------------------------------------------------------------- commands


@guarded
async def join(update: Update, context: Context) -> None:
    user = update.effective_user
    assert user is not None
    code = " ".join(context.args or [])
    responder = await deps(context).store.redeem_invite(code, CHANNEL, str(user.id))
    role = deps(context).service.catalogue.role_names.get(responder.role, "")
    extra = "\n工作人员还可以用:/queue /overdue /stats /health" if is_staff(responder) else ""
    await say(
        update,
        f"绑定成功!{responder.name}({role}),欢迎加入。新工单会在这里通知您。\n"
        f"常用命令:/my 我的工单 · /duty 在岗/休息 · /points 爱心积分{extra}",
    )


@guarded
async def my_tickets(update: Update, context: Context) -> None:
    minhu = deps(context)
    responder = await need_responder(update, context)
    tickets = await minhu.service.tickets_of_responder(responder.id)
    offers = await minhu.service.offers_to(responder.id)
    if not tickets and not offers:
        await say(update, "您目前没有在办的工单,也没有等您接的工单。")
        return
    for ticket in tickets:
        await say(update, describe(minhu, ticket, responder), card_buttons(ticket, responder))
    for ticket in offers:  # still open to them: the same card and buttons as the offer itself
        await say(update, *await offer_card(minhu, ticket, responder))


@guarded
async def duty(update: Update, context: Context) -> None:
    responder = await need_responder(update, context)
    updated = await deps(context).service.set_on_duty(responder.id, not responder.on_duty)
    if updated.on_duty:
        await say(update, "已切换为“在岗”,新工单会推送给您。")
    else:
        await say(update, "已切换为“休息”,暂时不会给您派新工单。再发 /duty 恢复在岗。")


@guarded
async def points(update: Update, context: Context) -> None:
    minhu = deps(context)
    responder = await need_responder(update, context)
    balance, history = await minhu.service.points_of(responder.id)
    lines = [f"您的爱心积分:{balance} 分"]
    lines += [
        f"· {when(e.at, minhu.tz)} {e.points:+d} {POINT_REASONS.get(e.reason, '办结工单')}" for e in history
    ]
    await say(update, "\n".join(lines))


# ------------------------------------------------------------------------------------- offers


@guarded
async def accept(update: Update, context: Context) -> None:
    query = update.callback_query
    assert query is not None
    minhu = deps(context)
    responder = await need_responder(update, context)
    number = (query.data or "").split(":", 1)[1]
    try:
        ticket = await minhu.service.accept(number, responder.id)
    except AlreadyTaken:
        await query.answer("已被他人接单")
        await query.edit_message_text(TAKEN.format(number=number))
        return
    await query.answer("接单成功!")
    await query.edit_message_text(
        describe(minhu, ticket, responder, heading=f"✅ 您已接单 {ticket.number}"),
        reply_markup=card_buttons(ticket, responder),
    )


@guarded
async def decline(update: Update, context: Context) -> None:
    query = update.callback_query
    assert query is not None
    responder = await need_responder(update, context)
    number = (query.data or "").split(":", 1)[1]
    await deps(context).service.ticket(number, Actor.responder(responder.id))  # in their community
    await query.answer()
    await query.edit_message_reply_markup(
        keyboard([[(reason, f"decr:{number}:{i}")] for i, reason in enumerate(DECLINE_REASONS)])
    )


@guarded
async def decline_reason(update: Update, context: Context) -> None:
    query = update.callback_query
    assert query is not None
    responder = await need_responder(update, context)
    _, number, index = (query.data or "").split(":")
    await deps(context).service.decline(number, responder.id, DECLINE_REASONS[int(index)])
    await query.answer("已告知社区,谢谢!")
    await query.edit_message_text(f"您没有接工单 {number}({DECLINE_REASONS[int(index)]}),已转给其他同志。")


# ------------------------------------------------------------------------------------- the card


@guarded
async def reveal_phone(update: Update, context: Context) -> None:
    query = update.callback_query
    assert query is not None
    responder = await need_responder(update, context)
    number = (query.data or "").split(":", 1)[1]
    # Who may see it, and the record of every reveal: the domain's rule (TicketService.reveal_phone).
    phone = (await deps(context).service.reveal_phone(number, responder.id) or "").removeprefix("+86")
    await query.answer()
    await say(update, f"工单 {number} 居民电话:{phone}" if phone else f"工单 {number} 居民没有留电话。")


@guarded
async def ask_for_text(update: Update, context: Context) -> int | None:
    """Entry of the card conversations: remember which ticket, ask for the text."""
    query = update.callback_query
    assert query is not None and context.user_data is not None
    responder = await need_responder(update, context)
    action, number = (query.data or "").split(":", 1)
    ticket = await deps(context).service.ticket(number, Actor.responder(responder.id))
    if ticket.assignee_id != responder.id:
        raise NotAllowed("只有接单人可以处理这张工单。")
    context.user_data["ticket"] = number
    state, prompt = PROMPTS[action]
    await query.answer()
    await say(update, prompt)
    return state


def _text(update: Update, context: Context) -> tuple[str, str]:
    message = update.effective_message
    assert message is not None and context.user_data is not None
    return str(context.user_data.get("ticket", "")), message.text or ""


def _finishing(
    act: Callable[[TicketService], Callable[[str, int, str], Awaitable[Ticket]]], done: str
) -> Callable[[Update, Context], Coroutine[Any, Any, int | None]]:
    """The last step of a card conversation: do it with the text the responder wrote, then confirm."""

    @guarded
    async def finish(update: Update, context: Context) -> int:
        responder = await need_responder(update, context)
        number, text = _text(update, context)
        await act(deps(context).service)(number, responder.id, text)
        await say(update, done.format(number=number))
        return ConversationHandler.END

    return finish


save_note = _finishing(lambda s: s.add_note, "备注已添加到工单 {number}。")
return_ticket = _finishing(lambda s: s.return_ticket, "工单 {number} 已退回,社区会另行安排。谢谢您!")
resolve = _finishing(lambda s: s.resolve, "工单 {number} 已办结,辛苦了!居民评价后积分会记到您名下。")


@guarded
async def message_resident(update: Update, context: Context) -> int:
    """The assignee's message to the resident goes through the outbox (retried, never claimed as sent
    when it was not); residents who did not come through Telegram are called instead."""
    minhu = deps(context)
    responder = await need_responder(update, context)
    number, text = _text(update, context)
    ticket = await minhu.service.ticket(number, Actor.responder(responder.id))
    channel, _ = split_channel_id(await minhu.store.channel_of_resident(ticket.resident_id))
    if channel != CHANNEL:
        await say(update, "这位居民不是通过 Telegram 联系我们的,请查看电话后直接联系。")
        return ConversationHandler.END
    await minhu.service.message_resident(number, responder.id, text)
    await say(update, "留言已记录,正在发给居民,送达后居民会在 Telegram 上看到。")
    return ConversationHandler.END


async def cancel(update: Update, context: Context) -> int:
    await say(update, "已取消。")
    return ConversationHandler.END


def register(application: App) -> None:
    text = filters.TEXT & ~filters.COMMAND
    with warnings.catch_warnings():
        # Per user, not per message, on purpose: the text that answers a card's button is a new message.
        warnings.simplefilter("ignore", PTBUserWarning)
        conversation = ConversationHandler(
            entry_points=[CallbackQueryHandler(ask_for_text, pattern=r"^(note|ret|done|msg):")],
            states={
                NOTE: [MessageHandler(text, save_note)],
                RETURN_REASON: [MessageHandler(text, return_ticket)],
                RESOLVE_NOTE: [MessageHandler(text, resolve)],
                MESSAGE_RESIDENT: [MessageHandler(text, message_resident)],
            },
            fallbacks=[CommandHandler("cancel", cancel)],
            name="ticket_card",
            persistent=application.persistence is not None,  # BotConfig.state_file: survives restarts
        )
    application.add_handler(conversation)
    application.add_handler(CommandHandler("join", join))
    application.add_handler(CommandHandler("my", my_tickets))
    application.add_handler(CommandHandler("duty", duty))
    application.add_handler(CommandHandler("points", points))
    application.add_handler(CallbackQueryHandler(accept, pattern=r"^acc:"))
    application.add_handler(CallbackQueryHandler(decline, pattern=r"^dec:"))
    application.add_handler(CallbackQueryHandler(decline_reason, pattern=r"^decr:[^:]+:[0-2]$"))
    application.add_handler(CallbackQueryHandler(reveal_phone, pattern=r"^call:"))
