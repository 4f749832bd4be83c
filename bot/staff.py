"""Community staff: /queue (their community's open tickets, overdue first), /overdue, /stats (today's and this
month's 响应率 / 解决率 / 满意率), /health (outbox delivery lag, assistant reachable), and dispatch or reassign
from a ticket's card. Escalations reach them through the outbox (bot/delivery.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from telegram import Update
from telegram.ext import CallbackQueryHandler, CommandHandler

from bot.common import STAFF_ONLY, App, Context, Minhu, deps, guarded, is_staff, keyboard, responder_of, say
from bot.responders import describe
from tickets.actors import Actor
from tickets.errors import NotAllowed
from tickets.metrics import LoopFigures, Period
from tickets.models import Responder, Status

REASSIGN_REASON = "社区工作人员在 Telegram 上改派"
PICK_LIMIT = 24


async def need_staff(update: Update, context: Context) -> Responder:
    responder = await responder_of(update, context)
    if not is_staff(responder):
        raise NotAllowed(STAFF_ONLY)
    assert responder is not None
    return responder


async def _list(update: Update, context: Context, *, only_overdue: bool) -> None:
    minhu = deps(context)
    staff = await need_staff(update, context)
    now = minhu.service.clock.now()
    tickets = sorted(
        await minhu.service.queue(staff.id, overdue_only=only_overdue),
        key=lambda t: (not t.is_overdue(now), t.resolve_by, t.id),
    )
    if not tickets:
        await say(update, "没有超期的工单。" if only_overdue else "本社区目前没有待办工单。")
        return
    title = f"超期工单 {len(tickets)} 张:" if only_overdue else f"待办工单 {len(tickets)} 张(超期在前):"
    lines, rows = [title], []
    for ticket in tickets[:PICK_LIMIT]:
        flag = "⚠️超期 " if ticket.is_overdue(now) else ""
        name = minhu.service.catalogue.get(ticket.category).name
        lines.append(f"· {flag}{ticket.number} {name} {Status(ticket.status).label}")
        rows.append([(f"{flag}{ticket.number}", f"card:{ticket.number}")])
    await say(update, "\n".join(lines), keyboard(rows))


@guarded
async def queue(update: Update, context: Context) -> None:
    await _list(update, context, only_overdue=False)


@guarded
async def overdue_command(update: Update, context: Context) -> None:
    await _list(update, context, only_overdue=True)


def _rates(label: str, figures: LoopFigures) -> str:
    def pct(value: float | None) -> str:
        return "—" if value is None else f"{value:.0%}"

    return (
        f"{label}:工单 {figures.total} 张,响应率 {pct(figures.response_rate)},"
        f"解决率 {pct(figures.resolution_rate)},满意率 {pct(figures.satisfaction_rate)}"
    )


@guarded
async def stats(update: Update, context: Context) -> None:
    minhu = deps(context)
    staff = await need_staff(update, context)
    local = minhu.service.clock.now().astimezone(minhu.tz)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    today = Period(midnight, midnight + timedelta(days=1), "今天")
    month = Period.month(local.year, local.month, str(minhu.tz))
    lines = ["民呼我应统计:"]
    for label, period in (("今天", today), (f"{local.month}月", month)):
        lines.append(_rates(label, await minhu.service.community_figures(staff.id, period)))
    await say(update, "\n".join(lines))


@guarded
async def health(update: Update, context: Context) -> None:
    minhu = deps(context)
    await need_staff(update, context)
    backlog = await minhu.store.backlog()
    lag = backlog.lag(minhu.service.clock.now())
    rasa = "正常" if await minhu.relay.rasa.reachable() else "连不上(居民消息会先保存,恢复后补发)"
    waiting = len(await minhu.store.waiting_senders())
    await say(
        update,
        f"系统状态:\n· 待发送通知 {backlog.pending} 条,最久已等 {int(lag.total_seconds())} 秒\n"
        f"· 智能助手:{rasa}\n· 等待助手回复的居民:{waiting} 位",
    )


# ------------------------------------------------------------------------------------- the card


def _number(update: Update) -> str:
    assert update.callback_query is not None
    return (update.callback_query.data or "").split(":")[1]


@guarded
async def card(update: Update, context: Context) -> None:
    minhu = deps(context)
    staff = await need_staff(update, context)
    number = _number(update)
    ticket = await minhu.service.ticket(number, Actor.responder(staff.id))
    assert update.callback_query is not None
    await update.callback_query.answer()
    buttons = None
    if ticket.status in (Status.CREATED, Status.DISPATCHED, Status.ACCEPTED):
        label = "派单" if ticket.status == Status.CREATED else "改派"
        row = [(label, f"pick:{number}")]
        if ticket.contact_phone:
            row.append(("查看居民电话", f"call:{number}"))  # staff call too (the reveal is recorded)
        buttons = keyboard([row])
    await say(update, describe(minhu, ticket, staff), buttons)


@guarded
async def pick(update: Update, context: Context) -> None:
    minhu = deps(context)
    staff = await need_staff(update, context)
    number = _number(update)
    people = await minhu.service.assignable(number, staff.id)
    assert update.callback_query is not None
    await update.callback_query.answer()
    await say(update, f"把工单 {number} 派给谁?", keyboard(_people(minhu, number, people)))


def _people(minhu: Minhu, number: str, people: Sequence[Responder]) -> list[list[tuple[str, str]]]:
    names = minhu.service.catalogue.role_names
    return [
        [(f"{p.name}({names.get(p.role, p.role)}){'' if p.on_duty else ' 休息中'}", f"asg:{number}:{p.id}")]
        for p in people[:PICK_LIMIT]
    ]


@guarded
async def assign(update: Update, context: Context) -> None:
    minhu = deps(context)
    staff = await need_staff(update, context)
    query = update.callback_query
    assert query is not None
    _, number, target = (query.data or "").split(":")
    ticket = await minhu.service.ticket(number, Actor.responder(staff.id))
    if ticket.status == Status.CREATED:
        ticket = await minhu.service.dispatch(number, staff.id, int(target))
    else:
        ticket = await minhu.service.reassign(number, staff.id, int(target), REASSIGN_REASON)
    await query.answer("已派出")
    await query.edit_message_text(f"工单 {number} 已派出,接单人会收到通知。")


def register(application: App) -> None:
    application.add_handler(CommandHandler("queue", queue))
    application.add_handler(CommandHandler("overdue", overdue_command))
    application.add_handler(CommandHandler("stats", stats))
    application.add_handler(CommandHandler("health", health))
    application.add_handler(CallbackQueryHandler(card, pattern=r"^card:[^:]+$"))
    application.add_handler(CallbackQueryHandler(pick, pattern=r"^pick:[^:]+$"))
    application.add_handler(CallbackQueryHandler(assign, pattern=r"^asg:[^:]+:[0-9]+$"))
