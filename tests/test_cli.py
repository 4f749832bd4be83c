"""The `minhu` command line on a temporary embedded SQLite database: `db upgrade` and `org load`."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner, Result

from app.settings import get_settings
from minhu.cli import app
from tickets.db import head_revision

DEMO = Path(__file__).resolve().parent.parent / "tickets" / "data" / "demo_org.yml"
FIXTURE_ORG = Path(__file__).resolve().parent / "fixtures" / "org.yml"


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The SQLite file the CLI will use: MINHU_DATA_DIR points at a temp folder, no DATABASE_URL."""
    data = tmp_path / "data"
    monkeypatch.setenv("MINHU_DATA_DIR", str(data))
    monkeypatch.setenv("DATABASE_URL", "")
    get_settings.cache_clear()
    yield data / "minhu.db"
    get_settings.cache_clear()


def minhu(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def rows(database: Path, table: str) -> int:
    with sqlite3.connect(database) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_upgrade_then_load_the_demo_org(database: Path) -> None:
    upgraded = minhu("db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.output
    assert "已新建数据库的全部数据表" in upgraded.output

    loaded = minhu("org", "load", str(DEMO))

    assert loaded.exit_code == 0, loaded.output
    for line in (
        "created 1 streets",
        "created 3 communities",
        "created 9 grids",
        "created 9 compounds",
        "created 36 responders",
    ):
        assert line in loaded.output.splitlines()
    assert "没有变化" not in loaded.output
    assert (rows(database, "streets"), rows(database, "responders")) == (1, 36)

    again = minhu("org", "load", str(DEMO))

    assert again.exit_code == 0, again.output
    assert again.output.strip() == "没有变化 (nothing changed)."
    assert rows(database, "responders") == 36


def test_db_upgrade_says_what_it_did(database: Path) -> None:
    """A brand-new database is created, an older one upgraded from its revision, a current one left alone:
    each is said as such (a first run used to say "已是最新版本")."""
    head = head_revision()
    created = minhu("db", "upgrade", "--revision", "0003")
    assert created.exit_code == 0, created.output
    assert "已新建数据库的全部数据表,版本 0003" in created.output

    upgraded = minhu("db", "upgrade")
    assert f"数据库已从版本 0003 升级到 {head}" in upgraded.output

    again = minhu("db", "upgrade")
    assert f"数据库已是最新版本 {head},无需升级" in again.output


def test_a_second_file_reports_what_it_updated(database: Path, tmp_path: Path) -> None:
    assert minhu("db", "upgrade").exit_code == 0
    assert minhu("org", "load", str(DEMO)).exit_code == 0
    raw = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    raw["streets"][0]["responders"][0]["capacity"] = 5
    changed = tmp_path / "changed.yml"
    changed.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")

    result = minhu("org", "load", str(changed))

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["updated 1 responders"]


def test_load_before_upgrade_says_to_run_db_upgrade(database: Path) -> None:
    result = minhu("org", "load", str(DEMO))

    assert result.exit_code == 1
    assert "minhu db upgrade" in result.stderr
    assert isinstance(result.exception, SystemExit)  # a message, not a traceback


def test_a_missing_file_is_refused(database: Path, tmp_path: Path) -> None:
    result = minhu("org", "load", str(tmp_path / "nowhere.yml"))

    assert result.exit_code != 0
    assert "nowhere.yml" in result.output
    assert not database.exists() or rows(database, "streets") == 0


def test_a_bad_org_file_is_refused_and_nothing_is_written(database: Path, tmp_path: Path) -> None:
    assert minhu("db", "upgrade").exit_code == 0
    raw = yaml.safe_load(FIXTURE_ORG.read_text(encoding="utf-8"))
    raw["streets"][0]["responders"].append(
        {"code": "vol-new", "name": "柯小燕", "role": "party_volunteer", "community": "nowhere"}
    )
    bad = tmp_path / "bad.yml"
    bad.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")

    result = minhu("org", "load", str(bad))

    assert result.exit_code == 1
    assert "vol-new: unknown community 'nowhere'" in result.stderr
    assert isinstance(result.exception, SystemExit)
    assert rows(database, "streets") == rows(database, "responders") == 0


@pytest.mark.parametrize(
    "content",
    ["streets:\n  - code: minan\n    name: [民安街道\n", "streets:\n\t- code: minan\n"],
    ids=["unclosed", "tab"],
)
def test_malformed_yaml_is_a_clear_error_not_a_traceback(
    database: Path, tmp_path: Path, content: str
) -> None:
    assert minhu("db", "upgrade").exit_code == 0
    bad = tmp_path / "bad.yml"
    bad.write_text(content, encoding="utf-8")

    result = minhu("org", "load", str(bad))

    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), result.exception
    assert "bad.yml" in result.stderr and "line" in result.stderr
    assert rows(database, "streets") == 0


def test_data_new_key_then_rekey_rewrites_the_phones_under_the_new_key(database: Path) -> None:
    assert minhu("db", "upgrade").exit_code == 0  # makes the key file on first use
    key_file = database.parent / "minhu.keys"
    assert key_file.exists()
    assert minhu("org", "load", str(FIXTURE_ORG)).exit_code == 0  # two responders have phones

    def key_ids() -> set[str]:
        with sqlite3.connect(database) as conn:
            rows = conn.execute("SELECT phone FROM responders WHERE phone IS NOT NULL").fetchall()
        return {phone.split(":")[0] for (phone,) in rows}

    before = key_ids()
    added = minhu("data", "new-key")
    assert added.exit_code == 0, added.output
    assert key_ids() == before  # nothing rewritten yet: the old key still decrypts

    rekeyed = minhu("data", "rekey")
    assert rekeyed.exit_code == 0, rekeyed.output
    assert "responders.phone: re-encrypted 2" in rekeyed.output
    (current,) = key_ids()
    assert current != before.pop() and current in rekeyed.output


def test_responders_unbind_removes_the_telegram_account(database: Path) -> None:
    assert minhu("db", "upgrade").exit_code == 0
    assert minhu("org", "load", str(FIXTURE_ORG)).exit_code == 0  # vol-a1 is bound to Telegram 1001
    assert rows(database, "responder_contacts") == 1

    unbound = minhu("responders", "unbind", "vol-a1")
    assert unbound.exit_code == 0, unbound.output
    assert "unbound" in unbound.output and rows(database, "responder_contacts") == 0
    assert "nothing to unbind" in minhu("responders", "unbind", "vol-a1").output
    assert minhu("responders", "unbind", "nobody").exit_code == 1


def test_minhu_staff_add_list_passwd_disable(database: Path) -> None:
    """`minhu staff`: an account for a staff member of the demo org with a generated password shown once,
    listed (no password or hash), a new password, disabled; a volunteer gets none."""
    assert minhu("db", "upgrade").exit_code == 0
    assert minhu("org", "load", str(DEMO)).exit_code == 0
    with sqlite3.connect(database) as conn:
        staff_code = conn.execute("SELECT code FROM responders WHERE role = 'community_staff'").fetchone()[0]
        volunteer = conn.execute("SELECT code FROM responders WHERE role = 'party_volunteer'").fetchone()[0]

    added = minhu("staff", "add", "zhouli", "--responder", staff_code)
    assert added.exit_code == 0, added.output
    assert "已开通工作台账号 zhouli" in added.output
    password = added.output.split("初始密码(只显示这一次,请转交本人):")[1].strip()
    assert len(password) >= 10

    listed = minhu("staff", "list")
    assert listed.exit_code == 0 and "zhouli" in listed.output and password not in listed.output
    with sqlite3.connect(database) as conn:
        stored = conn.execute("SELECT password_hash FROM staff_accounts").fetchone()[0]
    assert stored.startswith("$argon2id$") and stored not in listed.output

    typed = CliRunner().invoke(app, ["staff", "passwd", "zhouli", "--prompt"], input="a typed password\n" * 2)
    assert typed.exit_code == 0, typed.output
    assert "已为 zhouli 设置新密码" in typed.output and "a typed password" not in typed.output

    refused = minhu("staff", "add", "vol", "--responder", volunteer)
    assert refused.exit_code == 1 and "只有社区或街道工作人员" in refused.output

    disabled = minhu("staff", "disable", "zhouli")
    assert disabled.exit_code == 0 and "已停用账号 zhouli" in disabled.output
    assert "已停用" in minhu("staff", "list").output
    assert minhu("staff", "disable", "nobody").exit_code == 1


def test_minhu_apikeys_add_list_revoke(database: Path) -> None:
    """`minhu apikeys`: a key printed once and stored as its sha256 only, listed without it, revoked."""
    import hashlib

    assert minhu("db", "upgrade").exit_code == 0
    added = minhu("apikeys", "add", "city-12345")
    assert added.exit_code == 0, added.output
    key = added.output.split("系统只保存它的哈希):")[1].strip()
    assert key.startswith("mh_") and len(key) > 40
    with sqlite3.connect(database) as conn:
        stored = conn.execute("SELECT key_hash FROM api_keys WHERE name = 'city-12345'").fetchone()[0]
    assert stored == hashlib.sha256(key.encode()).hexdigest()

    listed = minhu("apikeys", "list")
    assert listed.exit_code == 0 and "city-12345" in listed.output and "有效" in listed.output
    assert key not in listed.output and stored not in listed.output
    assert minhu("apikeys", "add", "city-12345").exit_code == 1  # one key per name

    revoked = minhu("apikeys", "revoke", "city-12345")
    assert revoked.exit_code == 0 and "已停用 city-12345" in revoked.output
    assert "已停用" in minhu("apikeys", "list").output
    assert minhu("apikeys", "revoke", "nobody").exit_code == 1


def test_minhu_web_serves_the_dashboard_alone_with_health(database: Path) -> None:
    """`minhu web` (a web replica of a deployment) as a real process: the chat page and /healthz answer, and
    /readyz says Rasa is not there (none was started: the command starts no Rasa of its own)."""
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request

    assert minhu("db", "upgrade").exit_code == 0
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port, rasa_port = probe.getsockname()[1], 1  # nothing listens on port 1
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        "MINHU_DASHBOARD_PORT": str(port),
        "MINHU_RASA_URL": f"http://127.0.0.1:{rasa_port}",
    }
    web = subprocess.Popen(
        [sys.executable, "-m", "minhu.cli", "web"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert web.poll() is None, web.stderr.read().decode()[-2000:] if web.stderr else ""
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2) as alive:
                    assert alive.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "minhu web did not answer within 60 s"
                time.sleep(0.2)
        with urllib.request.urlopen(f"{base}/chat", timeout=5) as chat:
            assert chat.status == 200
        with pytest.raises(urllib.error.HTTPError) as not_ready:
            urllib.request.urlopen(f"{base}/readyz", timeout=10)
        assert not_ready.value.code == 503
        states = json_of(not_ready.value.read())
        assert states["database"] == "ok" and states["rasa"] != "ok"
    finally:
        web.terminate()
        web.wait(30)
    assert web.returncode == 0  # SIGTERM (docker stop) closes it cleanly; it used to die of the signal
    assert web.stdout and "居民网页聊天" in web.stdout.read().decode()


def json_of(body: bytes) -> dict[str, str]:
    import json

    parsed: dict[str, str] = json.loads(body)
    return parsed
