"""The dashboard's session secret (32 bytes that encrypt and sign its cookies): MINHU_DASHBOARD_SECRET, or
else the secret file in the data folder, made with mode 0600 on first use like the data keys
(app.datakeys), so the embedded default needs no configuration and sessions survive a restart."""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import secrets
import stat

from app.datakeys import KeyFileError
from app.settings import Settings


def dashboard_secret(settings: Settings) -> bytes:
    if settings.dashboard_secret.strip():
        return _parse(settings.dashboard_secret, "MINHU_DASHBOARD_SECRET")
    path = settings.dashboard_secret_file
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(descriptor, "w", encoding="ascii") as file:
                file.write(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
            with contextlib.suppress(FileExistsError):  # another process made it first: theirs stands
                os.link(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"{path} may be read by other users: chmod 600 {path}")
    return _parse(path.read_text(encoding="ascii"), str(path))


def _parse(text: str, where: str) -> bytes:
    try:
        secret = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        secret = b""
    if len(secret) != 32:
        raise KeyFileError(f"{where}: not base64 of 32 bytes")
    return secret
