"""The Telegram inbox's tables (tickets.inbox; migration 0010), in their own module (models.py's length)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from tickets.models import Base

PENDING_SQL = "done_at IS NULL"


class InboxUpdate(Base):
    """An update as the receiver got it from Telegram, recorded before Telegram is answered; `done_at` once a
    worker has handled it."""

    __tablename__ = "telegram_inbox"
    __table_args__ = (
        Index(
            "ix_telegram_inbox_pending",
            "chat_id",
            "update_id",
            postgresql_where=text(PENDING_SQL),
            sqlite_where=text(PENDING_SQL),
        ),
        Index("ix_telegram_inbox_done_at", "done_at"),
    )
    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    chat_id: Mapped[int] = mapped_column(BigInteger)  # 0: an update without a chat
    payload: Mapped[str] = mapped_column(Text)  # the update's JSON as Telegram sent it
    received_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    done_at: Mapped[datetime | None]


class InboxHandled(Base):
    """The update's handlers ran and their database effects committed (with this row); what is left is
    relaying the resident's stored message to the assistant and marking the update done."""

    __tablename__ = "telegram_inbox_handled"
    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    senders: Mapped[str] = mapped_column(Text, default="")  # relay senders to drain, space separated
    at: Mapped[datetime]


class InboxCall(Base):
    """A Bot API call an update's handlers made and Telegram accepted, in order (`seq`), with Telegram's
    answer: handling the update again (its worker died before the effects committed) gives the same answer
    back instead of sending it twice. Written before the call with status 0 ("about to call"), so a call
    cut off by the worker's death is known to be in doubt."""

    __tablename__ = "telegram_inbox_calls"
    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    method: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    response: Mapped[str] = mapped_column(Text)


class ChatState(Base):
    """A Telegram user's conversation state between updates (the responders' card step and its ticket),
    read and written by whichever worker handles the user's update, in the update's transaction."""

    __tablename__ = "telegram_chat_states"
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    state: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]
