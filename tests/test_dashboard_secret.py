"""The dashboard's session secret: from MINHU_DASHBOARD_SECRET, or a 0600 file in the data folder made once
and read again by the next start (sessions survive a restart)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from app.dashboard_secret import dashboard_secret
from app.datakeys import KeyFileError
from app.settings import Settings


def test_the_secret_file_is_made_once_private_and_kept(tmp_path: Path) -> None:
    settings = Settings(MINHU_DATA_DIR=tmp_path)
    first = dashboard_secret(settings)
    assert len(first) == 32
    assert settings.dashboard_secret_file.stat().st_mode & 0o777 == 0o600
    assert dashboard_secret(settings) == first


def test_the_environment_s_secret_wins_and_a_bad_one_is_named(tmp_path: Path) -> None:
    given = bytes(range(32))
    settings = Settings(MINHU_DATA_DIR=tmp_path, MINHU_DASHBOARD_SECRET=base64.b64encode(given).decode())
    assert dashboard_secret(settings) == given
    assert not settings.dashboard_secret_file.exists()
    with pytest.raises(KeyFileError, match="MINHU_DASHBOARD_SECRET"):
        dashboard_secret(Settings(MINHU_DATA_DIR=tmp_path, MINHU_DASHBOARD_SECRET="short"))
