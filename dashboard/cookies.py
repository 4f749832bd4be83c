"""A long-lived identity kept in an encrypted cookie of its own: the web chat's resident (`minhu_chat`) and the
volunteer page's responder (`minhu_volunteer`). Separate from the staff session, which lasts 12 hours."""

from __future__ import annotations

import base64
import json
import re

from aiohttp import web
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAX_COOKIE = 1000  # characters: anything longer is not one of ours


class SealedCookie:
    """One value in a Fernet (AES + HMAC) cookie under a key derived from the dashboard secret for this cookie
    alone (`purpose`), so one cookie cannot be replayed as another. A cookie that does not decrypt, is older
    than `days`, or holds a value that does not match `pattern` reads as None: the visitor starts afresh,
    never as somebody else."""

    def __init__(
        self,
        secret: bytes,
        *,
        name: str,
        purpose: bytes,
        pattern: re.Pattern[str],
        days: int,
        secure: bool = False,
    ) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret)
        self.fernet = Fernet(base64.urlsafe_b64encode(key))
        self.name = name
        self.pattern = pattern
        self.max_age = days * 86400
        self.secure = secure

    def read(self, request: web.Request) -> str | None:
        raw = request.cookies.get(self.name)
        if not raw or len(raw) > MAX_COOKIE:
            return None
        try:
            data = json.loads(self.fernet.decrypt(raw.encode(), ttl=self.max_age))
        except (InvalidToken, ValueError):
            return None
        value = data.get("v") if isinstance(data, dict) else None
        return value if isinstance(value, str) and self.pattern.fullmatch(value) else None

    def keep(self, response: web.StreamResponse, value: str) -> None:
        sealed = self.fernet.encrypt(json.dumps({"v": value}).encode()).decode()
        response.set_cookie(
            self.name,
            sealed,
            max_age=self.max_age,
            path="/",
            httponly=True,
            samesite="Lax",
            secure=self.secure,
        )

    def drop(self, response: web.StreamResponse) -> None:
        response.del_cookie(self.name, path="/")
