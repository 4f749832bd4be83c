"""Where the data keys come from (tickets.crypto encrypts phones at rest with them): MINHU_DATA_KEY (and
MINHU_DATA_OLD_KEYS) from the environment, or else the key file in the data folder, created with mode 0600
on first use so the embedded default needs no configuration.

The key file holds one base64 key per line ('#' starts a comment): the last one encrypts, the ones above it
still decrypt. `minhu data new-key` appends a key; `minhu data rekey` rewrites every value under it, after
which the lines above can be deleted.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from app.settings import Settings
from tickets.crypto import DataKey, Keyring

HEADER = (
    "# Minhu data keys: base64 of 32 random bytes, one a line. The LAST key encrypts; keys above it still\n"
    "# decrypt. Keep this file secret and back it up apart from the database: without it the stored phones\n"
    "# cannot be read. Rotate: `minhu data new-key`, then `minhu data rekey`, then delete the older lines.\n"
)


class KeyFileError(RuntimeError):
    """The key file cannot be used (unreadable, readable by others, no key, malformed)."""


def keyring_from(settings: Settings) -> Keyring:
    """The keyring the settings name: the environment's keys if MINHU_DATA_KEY is set, else the key file's
    (created when missing)."""
    if settings.data_key.strip():
        try:
            current = DataKey.parse(settings.data_key)
            older = [DataKey.parse(k) for k in settings.data_old_keys.replace(",", " ").split()]
        except ValueError as error:
            raise KeyFileError(f"MINHU_DATA_KEY / MINHU_DATA_OLD_KEYS: {error}") from None
        return Keyring(current, older)
    keys = read_key_file(settings.key_file, create=True)
    return Keyring(keys[-1], keys[:-1])


def read_key_file(path: Path, *, create: bool = False) -> list[DataKey]:
    """The keys of the file, oldest first (the last one is current). `create`: a missing file is made with
    one new key."""
    if not path.exists():
        if not create:
            raise KeyFileError(f"{path}: no key file")
        _write_new(path, [DataKey.generate()])
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"{path} may be read by other users: chmod 600 {path}")
    keys = []
    for number, line in enumerate(path.read_text(encoding="ascii").splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            keys.append(DataKey.parse(text))
        except ValueError as error:
            raise KeyFileError(f"{path}, line {number}: {error}") from None
    if not keys:
        raise KeyFileError(f"{path}: no key in the file")
    return keys


def add_key(path: Path) -> DataKey:
    """Append a new key to the key file (created if missing): it becomes the current key."""
    keys = read_key_file(path) if path.exists() else []
    key = DataKey.generate()
    _write_new(path, [*keys, key], replace=True)
    return key


def _write_new(path: Path, keys: list[DataKey], *, replace: bool = False) -> None:
    """Write the file whole under a temporary name (mode 0600 from the start), then put it in place:
    atomically, and when not replacing only if no other process made one meanwhile (theirs is kept)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as file:
            file.write(HEADER + "".join(f"{k.encoded()}\n" for k in keys))
            file.flush()
            os.fsync(file.fileno())
        if replace:
            os.replace(temporary, path)
        else:
            with contextlib.suppress(FileExistsError):  # another process made it first: theirs stands
                os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
