"""API keys of the platforms that use the Open311 API (a city's 12345 system): add one (the key is shown
once), list them, revoke one, and find the platform behind a key a request carries.

Only the sha256 of a key is kept. A key is 32 random bytes (256 bits) from `secrets`, so its hash cannot be
brute-forced or looked up in a table; a slow password hash such as argon2 guards short human-chosen
passwords, and here it would only spend tens of milliseconds of CPU on every API request. A fast hash also
lets the key be found by an indexed lookup on its hash (argon2's random salt would not)."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from tickets.core import ServiceCore
from tickets.errors import NotFound, ValidationError
from tickets.models import ApiKey

KEY_PREFIX = "mh_"  # tells a Minhu key apart in a platform's configuration (and in a leaked-secret scan)
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{1,63}")
MAX_KEY = 128  # longer than any key we make: refused before hashing


@dataclass(frozen=True)
class ApiClient:
    """A platform's key as the edges see it (never the key itself)."""

    id: int
    name: str
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _client(row: ApiKey) -> ApiClient:
    return ApiClient(row.id, row.name, row.created_at, row.revoked_at, row.last_used_at)


class ApiKeys(ServiceCore):
    async def add_api_key(self, name: str) -> tuple[ApiClient, str]:
        """A new key for the platform `name`: (the platform, the key to hand over, shown only now)."""
        if not NAME_RE.fullmatch(name):
            raise ValidationError("名称只能用 2 到 64 个英文字母、数字、点、下划线或连字符。")
        key = generate_key()
        async with self._work() as session:
            if await session.scalar(select(ApiKey.id).where(ApiKey.name == name)):
                raise ValidationError(f"名称 {name} 已经有了;换一个名称,或先停用旧的。")
            row = ApiKey(name=name, key_hash=key_hash(key), created_at=self.clock.now())
            session.add(row)
            await session.flush()
            return _client(row), key

    async def api_keys(self) -> Sequence[ApiClient]:
        async with self.sessions() as session:
            return [_client(row) for row in await session.scalars(select(ApiKey).order_by(ApiKey.name))]

    async def revoke_api_key(self, name: str) -> ApiClient:
        """The key stops working at once (its tickets stay)."""
        async with self._work() as session:
            row = await session.scalar(select(ApiKey).where(ApiKey.name == name[:64]))
            if row is None:
                raise NotFound(what=f"API 密钥 {name[:64]}")
            if row.revoked_at is None:
                row.revoked_at = self.clock.now()
            return _client(row)

    async def api_client(self, key: str) -> ApiClient | None:
        """The platform behind a key, or None for an unknown or revoked one."""
        if not key or len(key) > MAX_KEY:
            return None
        async with self._work() as session:
            row = await session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash(key)))
            if row is None or row.revoked_at is not None:
                return None
            row.last_used_at = self.clock.now()
            return _client(row)
