"""Personal data at rest (个人信息保护法): phones are stored encrypted, AES-256-GCM from `cryptography`.

A stored value is `<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>`: a random 96-bit nonce per value, and the
key id (a fingerprint of the key, not the key) in front so keys can rotate. A `Keyring` holds the current
key, which encrypts, and older keys, which still decrypt; `rekey` rewrites every value under the current key,
after which the older keys can be dropped.

The domain never reads settings: the composition root (`app.wiring`) builds the keyring from the environment
or the key file and hands it over once with `configure`; tests configure a test key. Columns declared as
`EncryptedText` encrypt and decrypt on every path, ORM and Core alike. What cannot be read fails loudly
(`DataKeyError`): no keyring configured, an unknown key id, a wrong key, an altered value, or a plain value
(a legacy phone the migration should have encrypted). Nothing here puts a value into an error message.

Nothing looks a phone up by its value, so no keyed hash is stored beside it; comparing an encrypted column
in SQL (`==`, `IN`, `LIKE`, ordering) would compare ciphertexts, and raises instead.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Column, MetaData, Table, Text, TypeDecorator, column, select, table, update
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import operators

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # 96 bits, GCM's standard nonce
KEY_ID_LENGTH = 8  # hex characters of the key's fingerprint
SEPARATOR = ":"


class DataKeyError(Exception):
    """A value could not be encrypted or decrypted with the configured keys. Says why, never the value."""


def _b64decode(text: str) -> bytes:
    text = text.strip()
    padded = text + "=" * (-len(text) % 4)
    try:
        return base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None


@dataclass(frozen=True)
class DataKey:
    """One 256-bit key. Its id is a fingerprint (HMAC of a fixed label under the key): it names the key in
    stored values without telling anything about it."""

    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.secret) != KEY_BYTES:
            raise ValueError(f"a data key is {KEY_BYTES} bytes (base64 of 32 random bytes)")

    @property
    def id(self) -> str:
        return hmac.new(self.secret, b"minhu data key id", hashlib.sha256).hexdigest()[:KEY_ID_LENGTH]

    @classmethod
    def generate(cls) -> DataKey:
        return cls(os.urandom(KEY_BYTES))

    @classmethod
    def parse(cls, text: str) -> DataKey:
        """A key written as base64 (standard or URL-safe alphabet) of 32 bytes; ValueError otherwise."""
        try:
            return cls(_b64decode(text))
        except ValueError:
            raise ValueError(
                "a data key is base64 of 32 random bytes, e.g. from `minhu data new-key`"
            ) from None

    def encoded(self) -> str:
        return base64.b64encode(self.secret).decode()


class Keyring:
    """The current key (encrypts) and older keys (still decrypt what they encrypted)."""

    def __init__(self, current: DataKey, older: Iterable[DataKey] = ()) -> None:
        keys = [*older, current]
        if len({k.id for k in keys}) != len({k.secret for k in keys}):
            raise ValueError("two different data keys have the same id; generate another key")
        self.current = current
        self._ciphers = {k.id: AESGCM(k.secret) for k in keys}

    @property
    def current_id(self) -> str:
        return self.current.id

    @property
    def key_ids(self) -> Sequence[str]:
        return list(self._ciphers)

    def encrypt(self, plain: str) -> str:
        key_id = self.current.id
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[key_id].encrypt(nonce, plain.encode("utf-8"), key_id.encode())
        return f"{key_id}{SEPARATOR}{base64.urlsafe_b64encode(nonce + sealed).decode().rstrip('=')}"

    def key_id_of(self, stored: str) -> str | None:
        """The key id a stored value names, if it looks encrypted at all (known key or not)."""
        key_id, sep, body = stored.partition(SEPARATOR)
        if not sep or len(key_id) != KEY_ID_LENGTH or not body:
            return None
        try:
            int(key_id, 16)
        except ValueError:
            return None
        return key_id

    def decrypt(self, stored: str) -> str:
        key_id = self.key_id_of(stored)
        if key_id is None:
            raise DataKeyError("stored value is not encrypted (a plain legacy value? run `minhu db upgrade`)")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise DataKeyError(f"stored value is encrypted under key {key_id}, which is not configured")
        try:
            raw = _b64decode(stored.partition(SEPARATOR)[2])
            if len(raw) < NONCE_BYTES + 16:
                raise ValueError("too short")
            plain = cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], key_id.encode())
            return plain.decode("utf-8")
        except (InvalidTag, ValueError):
            raise DataKeyError(
                f"stored value under key {key_id} does not authenticate: wrong key or altered value"
            ) from None


_keyring: Keyring | None = None


def configure(keyring: Keyring | None) -> None:
    """Set the keyring every `EncryptedText` column uses (the composition root does this once at start)."""
    global _keyring
    _keyring = keyring


def keyring() -> Keyring:
    if _keyring is None:
        raise DataKeyError("no data key configured: the application configures it at start-up (app.wiring)")
    return _keyring


# Comparing ciphertexts means nothing (every value has its own nonce): refuse instead of never matching.
_NO_SQL = {
    operators.eq,
    operators.ne,
    operators.lt,
    operators.le,
    operators.gt,
    operators.ge,
    operators.in_op,
    operators.not_in_op,
    operators.like_op,
    operators.not_like_op,
    operators.ilike_op,
    operators.not_ilike_op,
    operators.contains_op,
    operators.startswith_op,
    operators.endswith_op,
    operators.between_op,
    operators.asc_op,
    operators.desc_op,
}


class EncryptedText(TypeDecorator[str]):
    """A text column stored encrypted with the configured keyring (see the module's docstring)."""

    impl = Text
    cache_ok = True

    class comparator_factory(TypeDecorator.Comparator[str]):
        def operate(self, op: Any, *other: Any, **kwargs: Any) -> Any:
            if op in _NO_SQL:
                raise TypeError("an encrypted column cannot be compared or sorted in SQL")
            return super().operate(op, *other, **kwargs)

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise TypeError("an encrypted column holds text")
        return keyring().encrypt(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else keyring().decrypt(value)


def encrypted_columns(metadata: MetaData) -> list[tuple[Table, Column[Any]]]:
    """Every (table, column) of the schema stored with `EncryptedText`, in a fixed order."""
    return [(t, c) for t in metadata.sorted_tables for c in t.columns if isinstance(c.type, EncryptedText)]


async def rekey(engine: AsyncEngine, metadata: MetaData, *, batch: int = 500) -> dict[str, int]:
    """Rewrite every encrypted value that is not under the current key, a batch per transaction; safe while
    the application runs (a value changed meanwhile is left as it is: it was written under the current key).
    Returns how many values of each column were rewritten ("table.column": n)."""
    ring = keyring()
    done: dict[str, int] = {}
    for source, encrypted in encrypted_columns(metadata):
        (pk,) = source.primary_key.columns
        raw = table(source.name, column(pk.name), column(encrypted.name, Text()))
        ident, value = raw.c[pk.name], raw.c[encrypted.name]
        rewritten, last = 0, None
        while True:
            async with engine.begin() as conn:
                query = select(ident, value).where(value.is_not(None)).order_by(ident).limit(batch)
                if last is not None:
                    query = query.where(ident > last)
                rows = (await conn.execute(query)).all()
                for row_id, stored in rows:
                    if ring.key_id_of(stored) == ring.current_id:
                        continue
                    fresh = ring.encrypt(ring.decrypt(stored))
                    result = await conn.execute(
                        update(raw).where(ident == row_id, value == stored).values({value: fresh})
                    )
                    rewritten += result.rowcount
            if len(rows) < batch:
                break
            last = rows[-1][0]
        done[f"{source.name}.{encrypted.name}"] = rewritten
    return done
