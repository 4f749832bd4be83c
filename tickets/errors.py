"""Domain errors: a stable code for the edges and a plain Chinese message a resident or worker can read."""

from __future__ import annotations


class DomainError(Exception):
    code = "domain_error"
    default_message = "操作没有成功,请稍后再试。"

    def __init__(self, message: str | None = None, **context: object) -> None:
        self.message = message or self.default_message.format(**context)
        self.context = context
        super().__init__(self.message)


class ValidationError(DomainError):
    code = "invalid_input"
    default_message = "输入内容有误。"


class EmptyText(ValidationError):
    code = "empty_text"
    default_message = "请写一写您遇到的问题,内容不能为空。"


class TextTooLong(ValidationError):
    code = "text_too_long"
    default_message = "内容太长了(最多 {limit} 个字),请简要说明主要问题。"


class UnknownCategory(ValidationError):
    code = "unknown_category"
    default_message = "没有“{category}”这一类服务。"


class NotFound(DomainError):
    code = "not_found"
    default_message = "没有找到{what}。"


class TicketNotFound(NotFound):
    code = "ticket_not_found"
    default_message = "没有找到工单 {number}。"


class ResponderNotFound(NotFound):
    code = "responder_not_found"
    default_message = "没有找到这位工作人员或志愿者。"


class NotAllowed(DomainError):
    """The actor may not do this (wrong resident, wrong community, not staff)."""

    code = "not_allowed"
    default_message = "您没有权限进行这个操作。"


class IllegalTransition(DomainError):
    code = "illegal_transition"
    default_message = "工单 {number} 当前状态为“{status}”,不能{action}。"


class AlreadyTaken(DomainError):
    code = "already_taken"
    default_message = "工单 {number} 已被他人接单,谢谢您的热心!"


class ReasonRequired(ValidationError):
    code = "reason_required"
    default_message = "请填写原因,我们会告知居民。"


class ConcurrentChange(DomainError):
    code = "concurrent_change"
    default_message = "工单刚刚被其他人更新了,请刷新后再试。"


class CalendarNotCovered(DomainError):
    code = "calendar_not_covered"
    default_message = (
        "节假日日历尚未收录 {year} 年的安排(调休),无法计算工作日时限。请升级 chinesecalendar 包后重启。"
    )


class DatabaseNotMigrated(DomainError):
    code = "database_not_migrated"
    default_message = "数据库尚未初始化或版本过旧,请先运行:minhu db upgrade"


class DatabaseUnavailable(DomainError):
    """The database did not answer, even on a fresh connection (restarting, or down)."""

    code = "database_unavailable"
    default_message = "系统暂时忙不过来,您的这条消息没有收到,请稍后再发一次。"


class TooManyTickets(DomainError):
    """A resident opened more tickets in the last hour than the policy allows (防刷单)."""

    code = "too_many_tickets"
    default_message = (
        "您在一小时内已经提交了 {limit} 条诉求,我们正在逐一处理。请稍等一会儿再提交新的诉求;"
        "如果情况紧急,请直接拨打社区电话或 12345 热线。"
    )


class LoginRefused(DomainError):
    """Wrong username or password, or a disabled account: the same words for each (no hint which)."""

    code = "login_refused"
    default_message = "用户名或密码不对,请再试一次。"


class AccountLocked(DomainError):
    code = "account_locked"
    default_message = "登录失败次数太多,账号已暂时锁定,请 {minutes} 分钟后再试。"
