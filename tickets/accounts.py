"""Staff accounts for the dashboard, the step before any staff work in a browser: add an account for a
community or street staff member of the org chart, set its password, disable it, and sign in with it.

Passwords are hashed with argon2 (argon2-cffi) and never stored, logged or returned. After
`MAX_FAILED_LOGINS` failed sign-ins in a row the account is locked for `LOCK_FOR` (the service's clock);
a new password or disabling the account bumps its `generation`, which ends the sessions signed in before."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tickets.catalogue import Role
from tickets.core import ServiceCore
from tickets.errors import AccountLocked, LoginRefused, NotFound, ValidationError
from tickets.models import Responder, StaffAccount

MAX_FAILED_LOGINS = 5
LOCK_FOR = timedelta(minutes=15)
MIN_PASSWORD = 10
MAX_PASSWORD = 256
USERNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{1,63}")

_hasher = PasswordHasher()
# Verified against when the username is unknown, so a wrong name takes as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class StaffLogin:
    """A staff account as the edges see it: who, the responder it is, its scope (community None: the
    whole street), and the generation its sessions carry."""

    account_id: int
    username: str
    responder_id: int
    name: str
    community_id: int | None
    street_id: int
    is_admin: bool
    generation: int
    disabled: bool = False


def generate_password() -> str:
    """A one-time password to hand over (16 URL-safe characters)."""
    return secrets.token_urlsafe(12)


def _check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise ValidationError(f"密码至少需要 {MIN_PASSWORD} 个字符。")
    if len(password) > MAX_PASSWORD:
        raise ValidationError(f"密码最多 {MAX_PASSWORD} 个字符。")
    return password


async def _hash(password: str) -> str:
    # argon2 takes tens of milliseconds of CPU on purpose: off the event loop.
    return await asyncio.to_thread(_hasher.hash, password)


async def _verify(password_hash: str, password: str) -> bool:
    def verify() -> bool:
        try:
            return _hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(verify)


class Accounts(ServiceCore):
    async def add_account(
        self, username: str, responder_id: int, password: str, *, is_admin: bool = False
    ) -> StaffLogin:
        """A new account for a community or street staff member (refused for anyone else)."""
        if not USERNAME_RE.fullmatch(username):
            raise ValidationError("用户名只能用 2 到 64 个英文字母、数字、点、下划线或连字符。")
        password_hash = await _hash(_check_password(password))
        async with self._work() as session:
            responder = await self._responder(session, responder_id)
            if not Role(responder.role).is_staff:
                raise ValidationError("只有社区或街道工作人员可以开通工作台账号。")
            if await session.scalar(select(StaffAccount.id).where(StaffAccount.username == username)):
                raise ValidationError(f"用户名 {username} 已经有人用了。")
            account = StaffAccount(
                username=username,
                password_hash=password_hash,
                responder_id=responder.id,
                is_admin=is_admin,
                created_at=self.clock.now(),
            )
            session.add(account)
            await session.flush()
            return _login(account, responder)

    async def set_password(self, username: str, password: str) -> None:
        """A new password; it unlocks the account and ends its sessions."""
        password_hash = await _hash(_check_password(password))
        async with self._work() as session:
            account = await self._account(session, username)
            account.password_hash = password_hash
            account.failed_logins = 0
            account.locked_until = None
            account.generation += 1

    async def disable_account(self, username: str) -> None:
        """No more sign-ins, and its sessions stop working at their next request."""
        async with self._work() as session:
            account = await self._account(session, username)
            if account.disabled_at is None:
                account.disabled_at = self.clock.now()
                account.generation += 1

    async def authenticate(self, username: str, password: str) -> StaffLogin:
        """The account, if the password is right; LoginRefused otherwise (also for an unknown or disabled
        account), AccountLocked while locked after too many failures in a row."""
        now = self.clock.now()
        async with self._work() as session:
            account = await session.scalar(
                select(StaffAccount).where(StaffAccount.username == username[:64]).with_for_update()
            )
            if account is None:
                await _verify(_DUMMY_HASH, password)
                raise LoginRefused()
            if account.locked_until is not None and account.locked_until > now:
                minutes = max(1, int((account.locked_until - now).total_seconds() + 59) // 60)
                raise AccountLocked(minutes=minutes)
            if not await _verify(account.password_hash, password[:MAX_PASSWORD]):
                account.failed_logins += 1
                if account.failed_logins >= MAX_FAILED_LOGINS:
                    account.failed_logins = 0
                    account.locked_until = now + LOCK_FOR
                error: LoginRefused | None = LoginRefused()
            else:
                error = None
        if error is not None:  # raised after the unit of work, so the failure count is committed
            raise error
        async with self._work() as session:
            account = await self._account(session, username)
            if account.disabled_at is not None:
                raise LoginRefused()
            responder = await session.get(Responder, account.responder_id)
            if responder is None or not responder.active:
                raise LoginRefused()
            account.failed_logins = 0
            account.locked_until = None
            account.last_login_at = now
            return _login(account, responder)

    async def staff_login(self, account_id: int) -> StaffLogin | None:
        """The account behind a session, or None when it is gone, disabled, or its responder left."""
        async with self.sessions() as session:
            account = await session.get(StaffAccount, account_id)
            if account is None or account.disabled_at is not None:
                return None
            responder = await session.get(Responder, account.responder_id)
            if responder is None or not responder.active:
                return None
            return _login(account, responder)

    async def staff_accounts(self) -> Sequence[StaffLogin]:
        async with self.sessions() as session:
            rows = await session.execute(
                select(StaffAccount, Responder)
                .join(Responder, Responder.id == StaffAccount.responder_id)
                .order_by(StaffAccount.username)
            )
            return [_login(account, responder) for account, responder in rows]

    async def has_staff_accounts(self) -> bool:
        async with self.sessions() as session:
            return bool(await session.scalar(select(func.count()).select_from(StaffAccount)))

    async def responder_id_of(self, code: str) -> int:
        """The responder's id by their code in the org chart (e.g. staff-a)."""
        async with self.sessions() as session:
            found = await session.scalar(select(Responder.id).where(Responder.code == code))
            if found is None:
                raise NotFound(what=f"工作人员 {code}")
            return found

    async def _account(self, session: AsyncSession, username: str) -> StaffAccount:
        account = await session.scalar(select(StaffAccount).where(StaffAccount.username == username[:64]))
        if account is None:
            raise NotFound(what=f"账号 {username[:64]}")
        return account


def _login(account: StaffAccount, responder: Responder) -> StaffLogin:
    return StaffLogin(
        account_id=account.id,
        username=account.username,
        responder_id=responder.id,
        name=responder.name,
        community_id=responder.community_id,
        street_id=responder.street_id,
        is_admin=account.is_admin,
        generation=account.generation,
        disabled=account.disabled_at is not None,
    )
