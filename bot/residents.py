"""Residents: talk to the assistant (text and its buttons go to Rasa), /start (what the bot does and what it
stores), /help, /mytickets, photos and locations attached to their latest open ticket, voice refused honestly,
and the three 回访 questions after 办结 (buttons that carry the answers so far)."""

from __future__ import annotations

from collections.abc import Mapping

from telegram import InlineKeyboardMarkup, Update
from telegram.ext import CallbackQueryHandler, CommandHandler, MessageHandler, filters

from bot.common import App, Context, deps, guarded, keyboard, resident_of, say, sender_of, when
from tickets.models import Rating, Status
from tickets.privacy import CONSENT_QUESTION, INTRODUCTION, clean_text, what_we_keep

MAX_PHOTO_BYTES = 10 * 1024 * 1024
MAX_CAPTION = 1000

START = (
    INTRODUCTION
    + "\n\n"
    + what_we_keep("您的 Telegram 账号编号", "照片(只保存 Telegram 上的引用)和位置")
    + "\n\n"
    + CONSENT_QUESTION
)
HELP = (
    "怎么用:\n"
    "· 直接打字说出您的问题,我会一步步帮您登记\n"
    "· 登记后可以发照片或位置,会附在您最近的诉求上\n"
    "· /mytickets 查看我的诉求和进度\n"
    "· /start 了解我们保存哪些信息\n"
    "· 说“转人工”可以请社区工作人员联系您\n"
    "志愿者和工作人员:/join 邀请码 绑定账号,之后可用 /my /duty /points;工作人员另有 /queue /overdue /stats /health"
)
CONSENTED = "谢谢您的信任!现在就可以告诉我您遇到的问题了。"
VOICE = "抱歉,语音暂时听不懂,请打字告诉我您的问题。"
UNSUPPORTED = "抱歉,我暂时只能看懂文字、照片和位置,请用文字描述您的问题。"
EMPTY = "请写一写您遇到的问题,内容不能为空。"
NO_OPEN_TICKET = "您目前没有正在办理的诉求。请先用文字说说遇到的问题,登记后再发照片或位置,我会附在诉求上。"
PHOTO_TOO_BIG = "照片太大了(最多 10 MB),请压缩后再发。"
EXPIRED_BUTTON = "这个按钮已经失效了,请直接打字告诉我您的问题。"
EDITED = "修改过的消息我看不到,请把修改后的内容重新发一条。"
UNKNOWN_COMMAND = "没有这个命令。发送 /help 看看我能做什么。"

YES_NO = (("1", "是"), ("0", "否"))
QUESTIONS = ("工作人员联系过您吗?", "您的问题解决了吗?", "您对这次办理满意吗?")
RATING_CODES = {"s": Rating.SATISFIED, "b": Rating.BASIC, "u": Rating.UNSATISFIED}


def feedback_step(number: str, answers: str) -> tuple[str, InlineKeyboardMarkup]:
    """回访 question number len(answers) with buttons that carry the answers so far (no server state)."""
    if len(answers) < 2:
        options = [(f"{label}", f"fb:{number}:{answers}{code}") for code, label in YES_NO]
    else:
        options = [(rating.label, f"fb:{number}:{answers}{code}") for code, rating in RATING_CODES.items()]
    return f"工单 {number} 回访({len(answers) + 1}/3):{QUESTIONS[len(answers)]}", keyboard([options])


@guarded
async def start(update: Update, context: Context) -> None:
    await resident_of(update, context)
    await say(update, START, keyboard([[("同意", "consent")]]))


@guarded
async def consent(update: Update, context: Context) -> None:
    query = update.callback_query
    assert query is not None
    resident = await resident_of(update, context)
    await deps(context).service.remember_resident(resident.id, consent=True)
    await query.answer()
    await query.edit_message_reply_markup(None)
    await say(update, CONSENTED)


@guarded
async def help_command(update: Update, context: Context) -> None:
    await say(update, HELP)


@guarded
async def my_tickets(update: Update, context: Context) -> None:
    minhu = deps(context)
    resident = await resident_of(update, context)
    tickets = await minhu.service.tickets_of_resident(resident.id)
    if not tickets:
        await say(update, "您还没有提交过诉求。直接打字告诉我您遇到的问题就可以。")
        return
    lines = ["您最近的诉求:"]
    for ticket in tickets:
        name = minhu.service.catalogue.get(ticket.category).name
        lines.append(
            f"· {ticket.number} {name}:{ticket.progress_label}(提交于 {when(ticket.created_at, minhu.tz)})"
        )
    await say(update, "\n".join(lines))


@guarded
async def text_message(update: Update, context: Context) -> None:
    message = update.effective_message
    assert message is not None and update.effective_user is not None
    text = clean_text(message.text or "")
    if not text:
        await say(update, EMPTY)
        return
    await deps(context).relay.submit(context.bot, sender_of(update.effective_user.id), text)


@guarded
async def assistant_button(update: Update, context: Context) -> None:
    query = update.callback_query
    assert query is not None and update.effective_user is not None
    relay = deps(context).relay
    payload = await relay.payload_of(query.data or "")
    if payload is None:
        await query.answer(EXPIRED_BUTTON, show_alert=True)
        return
    await query.answer()
    await query.edit_message_reply_markup(None)  # pressed once: the same choice is not sent twice
    await relay.submit(context.bot, sender_of(update.effective_user.id), payload)


@guarded
async def photo(update: Update, context: Context) -> None:
    message = update.effective_message
    assert message is not None and message.photo
    largest = message.photo[-1]
    if (largest.file_size or 0) > MAX_PHOTO_BYTES:
        await say(update, PHOTO_TOO_BIG)
        return
    reference = {"file_id": largest.file_id, "file_size": largest.file_size}
    await _attach(update, context, "photo", reference, "照片")


@guarded
async def location(update: Update, context: Context) -> None:
    message = update.effective_message
    assert message is not None and message.location is not None
    reference = {
        "latitude": round(message.location.latitude, 6),
        "longitude": round(message.location.longitude, 6),
    }
    await _attach(update, context, "location", reference, "位置")


async def _attach(
    update: Update, context: Context, kind: str, reference: Mapping[str, object], what: str
) -> None:
    minhu = deps(context)
    resident = await resident_of(update, context)
    ticket = await minhu.service.attach(resident.id, kind, reference)
    if ticket is None:
        await say(update, NO_OPEN_TICKET)
        return
    await say(update, f"收到,{what}已附在您的诉求 {ticket.number} 上,办理人员可以看到。")
    message = update.effective_message
    caption = clean_text((message.caption if message else None) or "")[:MAX_CAPTION]
    if caption and update.effective_user is not None:
        await minhu.relay.submit(context.bot, sender_of(update.effective_user.id), caption)


@guarded
async def voice(update: Update, context: Context) -> None:
    await say(update, VOICE)


@guarded
async def unsupported(update: Update, context: Context) -> None:
    await say(update, UNSUPPORTED)


@guarded
async def edited(update: Update, context: Context) -> None:
    await say(update, EDITED)


@guarded
async def unknown_button(update: Update, context: Context) -> None:
    assert update.callback_query is not None
    await update.callback_query.answer(EXPIRED_BUTTON, show_alert=True)


@guarded
async def unknown_command(update: Update, context: Context) -> None:
    await say(update, UNKNOWN_COMMAND)


@guarded
async def feedback(update: Update, context: Context) -> None:
    """fb:<number>:<answers>: one more 回访 question, or with all three answers the rating itself."""
    query = update.callback_query
    assert query is not None
    _, number, answers = (query.data or "").split(":", 2)
    if len(answers) < 3:
        text, markup = feedback_step(number, answers)
        await query.answer()
        await query.edit_message_text(text, reply_markup=markup)
        return
    resident = await resident_of(update, context)
    rating = RATING_CODES.get(answers[2])
    if rating is None or any(a not in "01" for a in answers[:2]):
        await query.answer(EXPIRED_BUTTON, show_alert=True)
        return
    ticket = await deps(context).service.rate(
        number, resident.id, contacted=answers[0] == "1", solved=answers[1] == "1", rating=rating
    )
    await query.answer("谢谢您的评价!")
    if Status(ticket.status) == Status.CLOSED:
        text = f"谢谢您的评价({rating.label})!工单 {number} 已结案。"
    else:
        text = f"很抱歉没有让您满意。工单 {number} 已重新办理,社区会另外安排人员尽快联系您。"
    await query.edit_message_text(text)


def register(application: App) -> None:
    application.add_handler(CommandHandler("start", start))
    application.add_handler(CommandHandler("help", help_command))
    application.add_handler(CommandHandler("mytickets", my_tickets))
    application.add_handler(CallbackQueryHandler(consent, pattern=r"^consent$"))
    application.add_handler(
        CallbackQueryHandler(feedback, pattern=r"^fb:[^:]{1,32}:([01]{0,2}|[01]{2}[sbu])$")
    )
    application.add_handler(CallbackQueryHandler(assistant_button, pattern=r"^rb?:"))


def register_fallbacks(application: App) -> None:
    """Added last: plain messages go to the assistant once no conversation or command wanted them."""
    private = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
    application.add_handler(MessageHandler(filters.UpdateType.EDITED, edited))
    application.add_handler(MessageHandler(private & filters.TEXT & ~filters.COMMAND, text_message))
    application.add_handler(MessageHandler(private & filters.PHOTO, photo))
    application.add_handler(MessageHandler(private & filters.LOCATION, location))
    application.add_handler(MessageHandler(private & (filters.VOICE | filters.AUDIO), voice))
    application.add_handler(MessageHandler(private & filters.COMMAND, unknown_command))
    application.add_handler(CallbackQueryHandler(unknown_button))
    application.add_handler(MessageHandler(private & ~filters.COMMAND, unsupported))
