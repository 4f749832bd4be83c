"""The `minhu` command line."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
import yaml
from alembic import command

from app.settings import Settings, get_settings
from app.wiring import configure_data_keys, open_engine
from tickets.accounts import StaffLogin
from tickets.catalogue import Catalogue
from tickets.db import alembic_config, current_revision, session_factory, unit_of_work
from tickets.errors import DomainError
from tickets.org import load_org, parse_org
from tickets.service import TicketService

T = TypeVar("T")

app = typer.Typer(
    help="民呼 Minhu: community service tickets.", no_args_is_help=True, pretty_exceptions_enable=False
)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
org_app = typer.Typer(help="Org chart: streets, communities, grids, responders.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(org_app, name="org")
data_app = typer.Typer(help="Data keys: phones are encrypted at rest.", no_args_is_help=True)
app.add_typer(data_app, name="data")
responders_app = typer.Typer(help="Responders: volunteers, grid workers, staff.", no_args_is_help=True)
app.add_typer(responders_app, name="responders")
residents_app = typer.Typer(help="Residents: their personal data.", no_args_is_help=True)
app.add_typer(residents_app, name="residents")
staff_app = typer.Typer(help="Staff accounts of the dashboard (工作台).", no_args_is_help=True)
app.add_typer(staff_app, name="staff")
apikeys_app = typer.Typer(help="API keys of city platforms on the Open311 API.", no_args_is_help=True)
app.add_typer(apikeys_app, name="apikeys")


SENDER_HELP = (
    "Who you are to the assistant in the terminal chat, a channel id such as web:wang. Default: one resident "
    "per user account on this machine (the same after a restart)."
)


def fail(message: str) -> None:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply the migrations (creates the database on first run)."""
    settings = get_settings()
    configure_data_keys(settings)  # migrations that rewrite stored phones need the data key
    before = asyncio.run(database_revision(settings))
    command.upgrade(alembic_config(settings.db_url), revision)
    typer.echo(upgrade_report(before, asyncio.run(database_revision(settings))))


async def database_revision(settings: Settings) -> str | None:
    async with open_engine(settings, require_migrated=False) as engine:
        return await current_revision(engine)


def upgrade_report(before: str | None, after: str | None) -> str:
    """What `db upgrade` did, so a first run does not read as if nothing happened."""
    if before is None and after is not None:
        return f"已新建数据库的全部数据表,版本 {after} (created the schema at revision {after})."
    if before != after:
        return f"数据库已从版本 {before} 升级到 {after} (upgraded from {before} to {after})."
    return f"数据库已是最新版本 {after},无需升级 (already at revision {after}: nothing to do)."


@db_app.command("current")
def db_current() -> None:
    """Show the database's migration revision."""
    command.current(alembic_config(get_settings().db_url))


@data_app.command("new-key")
def data_new_key() -> None:
    """A new data key. Key file (default): appended as the current key, older keys still decrypt.
    MINHU_DATA_KEY set: prints a key to put there (the old one goes to MINHU_DATA_OLD_KEYS)."""
    from app.datakeys import KeyFileError, add_key
    from tickets.crypto import DataKey

    settings = get_settings()
    if settings.data_key.strip():
        key = DataKey.generate()
        typer.echo(
            f"新密钥 (new key) {key.id}:\n{key.encoded()}\n"
            "Set MINHU_DATA_KEY to it, move the current key into MINHU_DATA_OLD_KEYS, restart every "
            "Minhu process, then run `minhu data rekey`."
        )
        return
    try:
        key = add_key(settings.key_file)
    except KeyFileError as error:
        fail(str(error))
    typer.echo(
        f"新密钥 {key.id} 已加入 {settings.key_file} (new current key). Restart every Minhu process, "
        "then run `minhu data rekey`."
    )


@data_app.command("rekey")
def data_rekey() -> None:
    """Re-encrypt every stored phone under the current data key (safe while Minhu runs)."""
    from app.datakeys import KeyFileError
    from tickets.crypto import DataKeyError, keyring, rekey
    from tickets.models import Base

    async def run() -> tuple[str, dict[str, int]]:
        async with open_engine(get_settings()) as engine:
            return keyring().current_id, await rekey(engine, Base.metadata)

    try:
        current, done = asyncio.run(run())
    except (DataKeyError, KeyFileError) as error:
        fail(f"无法重新加密 (cannot re-encrypt): {error}")
    for column, n in done.items():
        typer.echo(f"{column}: re-encrypted {n}")
    typer.echo(
        f"每个电话号码现在都由密钥 {current} 加密 (every value is now under key {current}); older keys may be removed."
    )


@org_app.command("load")
def org_load(path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)]) -> None:
    """Import or update an org chart from YAML (idempotent)."""

    async def run() -> None:
        spec = parse_org(path)
        async with open_engine(get_settings()) as engine, unit_of_work(session_factory(engine)) as session:
            report = await load_org(session, spec, Catalogue.load())
        if not report.changed:
            typer.echo("没有变化 (nothing changed).")
        for kind, n in sorted(report.created.items()):
            typer.echo(f"created {n} {kind}")
        for kind, n in sorted(report.updated.items()):
            typer.echo(f"updated {n} {kind}")

    try:
        asyncio.run(run())
    except yaml.YAMLError as error:
        fail(f"{path}: YAML 格式有误 (malformed YAML): {error}")
    except (DomainError, ValueError) as error:
        fail(str(error))


@app.command("run")
def run_command(
    sweep_every: Annotated[float, typer.Option(help="Seconds between deadline sweeps.")] = 60.0,
    assistant: Annotated[
        bool, typer.Option(help="Start the assistant (action server + Rasa); off: the sweeper only.")
    ] = True,
    chat: Annotated[bool, typer.Option(help="Chat in this terminal once the assistant is up.")] = True,
    sender: Annotated[str | None, typer.Option(help=SENDER_HELP)] = None,
) -> None:
    """Run Minhu on the configured database (SQLite by default): sweeper, assistant, terminal chat."""
    from minhu.runner import run

    try:
        asyncio.run(
            run(get_settings(), sweep_every=sweep_every, assistant=assistant, chat=chat, sender=sender)
        )
    except KeyboardInterrupt:
        typer.echo("已停止 (stopped).")
    except RuntimeError as error:
        fail(str(error))


@app.command("web")
def web_command() -> None:
    """The dashboard, the residents' web chat and the Open311 API alone, on MINHU_DASHBOARD_HOST:PORT
    (with /healthz, /readyz, /metrics): no Rasa, no sweeper, no bot. The chat relays to MINHU_RASA_URL. For a
    deployment that runs several web replicas behind an entry (docs/deploy.md)."""
    from app.wiring import open_service
    from minhu.dashboard_server import dashboard_line, dashboard_server

    async def serve() -> None:
        settings = get_settings()
        stopped = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):  # `docker stop` sends SIGTERM: close cleanly
            asyncio.get_running_loop().add_signal_handler(signum, stopped.set)
        async with open_service(settings) as service, dashboard_server(settings, service) as dashboard:
            typer.echo(dashboard_line(dashboard))
            sys.stdout.flush()  # a pipe (a container's log) holds the line back otherwise
            await stopped.wait()
        typer.echo("已停止 (stopped).")

    try:
        asyncio.run(serve())
    except RuntimeError as error:
        fail(str(error))


@responders_app.command("invite")
def responders_invite(
    code: Annotated[str, typer.Argument(help="The responder's code in the org chart, e.g. vol-a1.")],
) -> None:
    """A one-time invite code (valid 7 days) the responder sends the Telegram bot (/join CODE) or types on
    the volunteer page (/v)."""
    from tickets.channels import ChannelStore
    from tickets.clock import SystemClock

    async def create() -> str:
        async with open_engine(get_settings()) as engine:
            return await ChannelStore(session_factory(engine), SystemClock()).create_invite(code)

    try:
        invite = asyncio.run(create())
    except DomainError as error:
        fail(error.message)
    typer.echo(
        f"邀请码 (invite code): {invite}\n请转告本人在 Telegram 上向民呼机器人发送:/join {invite},"
        "或在手机上打开志愿者网页(工作台地址加 /v)输入邀请码(7 天内有效,只能用一次)"
    )


@responders_app.command("unbind")
def responders_unbind(
    code: Annotated[str, typer.Argument(help="The responder's code in the org chart, e.g. staff-a.")],
    channel: Annotated[str, typer.Option(help="The channel whose account is removed.")] = "telegram",
) -> None:
    """Remove the responder's account on the channel (a lost phone, a new account): their next invite can
    bind another one. An account never replaces a bound one by itself."""
    from tickets.channels import ChannelStore
    from tickets.clock import SystemClock

    async def unbind() -> int:
        async with open_engine(get_settings()) as engine:
            return await ChannelStore(session_factory(engine), SystemClock()).unbind(code, channel)

    try:
        removed = asyncio.run(unbind())
    except DomainError as error:
        fail(error.message)
    if removed:
        typer.echo(
            f"已解除 {code} 的 {channel} 账号绑定 (unbound). 请用 `minhu responders invite {code}` 重新邀请。"
        )
    else:
        typer.echo(f"{code} 没有绑定 {channel} 账号 (nothing to unbind).")


@residents_app.command("forget")
def residents_forget(
    channel_id: Annotated[str, typer.Argument(help="The resident's channel id, e.g. telegram:123456.")],
) -> None:
    """Erase what is stored to contact a resident, on their request (个人信息删除): their phone, address and
    name, the phone and address of their ended tickets, and their conversation with the assistant. Open
    tickets keep their contact details until they end (the responder needs them); they are listed."""
    from app.wiring import open_service
    from minhu import conversations
    from tickets.actors import SYSTEM
    from tickets.retention import Forgotten

    async def forget() -> tuple[Forgotten, bool]:
        settings = get_settings()
        async with open_service(settings) as service:
            forgotten = await service.forget_resident(channel_id, SYSTEM)
        return forgotten, await conversations.forget(settings, channel_id)

    try:
        forgotten, conversation = asyncio.run(forget())
    except DomainError as error:
        fail(error.message)
    typer.echo(
        f"已删除 {channel_id} 的电话、地址和称呼;{len(forgotten.erased)} 张已结束工单的联系方式;"
        f"{'与助手的对话记录' if conversation else '(没有对话记录)'}。"
    )
    if forgotten.still_open:
        typer.echo(
            f"仍在办理的工单保留联系方式,办结或撤销后再删除 (still open, kept until they end): "
            f"{', '.join(forgotten.still_open)}"
        )


async def _with_service(work: Callable[[TicketService], Awaitable[T]]) -> T:
    from app.wiring import open_service

    async with open_service(get_settings()) as service:
        return await work(service)


def _staff(work: Callable[[TicketService], Awaitable[T]]) -> T:
    try:
        return asyncio.run(_with_service(work))
    except DomainError as error:
        fail(error.message)
        raise  # not reached: fail() exits


def _password(prompt: bool) -> tuple[str, bool]:
    """(password, generated): typed twice at a hidden prompt, or generated to be shown once."""
    from tickets.accounts import generate_password

    if prompt:
        return typer.prompt("密码 (password)", hide_input=True, confirmation_prompt=True), False
    return generate_password(), True


@staff_app.command("add")
def staff_add(
    username: Annotated[str, typer.Argument(help="The login name, e.g. zhouli.")],
    responder: Annotated[str, typer.Option("--responder", help="The staff member's code in the org chart.")],
    admin: Annotated[bool, typer.Option("--admin", help="Also reads the phone-reveal log.")] = False,
    prompt: Annotated[
        bool, typer.Option("--prompt", help="Type the password instead of a generated one.")
    ] = False,
) -> None:
    """A dashboard account for a community or street staff member (their community, or the street)."""
    password, generated = _password(prompt)

    async def add(service: TicketService) -> StaffLogin:
        responder_id = await service.responder_id_of(responder)
        return await service.add_account(username, responder_id, password, is_admin=admin)

    login = _staff(add)
    scope = "全街道" if login.community_id is None else "本社区"
    typer.echo(
        f"已开通工作台账号 {login.username}({login.name},{scope}{',管理员' if login.is_admin else ''})。"
    )
    if generated:
        typer.echo(f"初始密码(只显示这一次,请转交本人):{password}")


@staff_app.command("passwd")
def staff_passwd(
    username: Annotated[str, typer.Argument(help="The login name.")],
    prompt: Annotated[
        bool, typer.Option("--prompt", help="Type the password instead of a generated one.")
    ] = False,
) -> None:
    """A new password (unlocks the account and signs it out everywhere)."""
    password, generated = _password(prompt)
    _staff(lambda service: service.set_password(username, password))
    typer.echo(f"已为 {username} 设置新密码,原有登录已失效。")
    if generated:
        typer.echo(f"新密码(只显示这一次,请转交本人):{password}")


@staff_app.command("disable")
def staff_disable(username: Annotated[str, typer.Argument(help="The login name.")]) -> None:
    """No more sign-ins; the account's open sessions stop at their next request."""
    _staff(lambda service: service.disable_account(username))
    typer.echo(f"已停用账号 {username}。")


@staff_app.command("list")
def staff_list() -> None:
    """Every dashboard account: login name, who, scope, admin, disabled."""
    accounts = _staff(lambda service: service.staff_accounts())
    if not accounts:
        typer.echo("还没有工作台账号。用 minhu staff add USERNAME --responder CODE 开通。")
    for login in accounts:
        flags = [
            "全街道" if login.community_id is None else "本社区",
            *(["管理员"] if login.is_admin else []),
            *(["已停用"] if login.disabled else []),
        ]
        typer.echo(f"{login.username}\t{login.name}\t{' '.join(flags)}")


@apikeys_app.command("add")
def apikeys_add(
    name: Annotated[str, typer.Argument(help="Who uses the key, e.g. city-12345.")],
) -> None:
    """A new key for a platform on the Open311 API, printed once (only its hash is kept)."""
    client, key = _staff(lambda service: service.add_api_key(name))
    typer.echo(f"已为 {client.name} 创建 Open311 API 密钥。")
    typer.echo(f"密钥(只显示这一次,请妥善转交;系统只保存它的哈希):{key}")


@apikeys_app.command("list")
def apikeys_list() -> None:
    """Every key: name, created, last used, revoked (never the key)."""
    clients = _staff(lambda service: service.api_keys())
    if not clients:
        typer.echo("还没有 API 密钥。用 minhu apikeys add NAME 创建。")
    for client in clients:
        used = client.last_used_at.strftime("%Y-%m-%d %H:%M") if client.last_used_at else "未使用"
        state = "已停用" if client.revoked else "有效"
        typer.echo(f"{client.name}\t创建 {client.created_at:%Y-%m-%d}\t最近使用 {used}\t{state}")


@apikeys_app.command("revoke")
def apikeys_revoke(name: Annotated[str, typer.Argument(help="The key's name.")]) -> None:
    """The key stops working at once (the tickets it filed stay)."""
    _staff(lambda service: service.revoke_api_key(name))
    typer.echo(f"已停用 {name} 的 API 密钥。")


@app.command("bot")
def bot_command(
    webhook: Annotated[
        bool,
        typer.Option(help="Receive updates on a webhook (TELEGRAM_WEBHOOK_URL/SECRET) instead of polling."),
    ] = False,
    receiver: Annotated[
        bool,
        typer.Option(help="Only record updates for the workers (one active at a time; PostgreSQL)."),
    ] = False,
    worker: Annotated[
        bool,
        typer.Option(
            help="Only handle the updates the receiver recorded (any number of workers; PostgreSQL)."
        ),
    ] = False,
    concurrency: Annotated[int, typer.Option(help="Updates a worker handles at once.", min=1)] = 8,
) -> None:
    """Run the Telegram bot (TELEGRAM_BOT_TOKEN) and its outbox delivery; Rasa at MINHU_RASA_URL. For
    several bot processes (docs/deploy.md): one `--receiver` and any number of `--worker`."""
    from bot.app import run_bot, run_receiver, run_worker

    if receiver and worker:
        fail("--receiver 和 --worker 只能选一个 (choose one of --receiver and --worker)")
    try:
        if receiver:
            asyncio.run(run_receiver(get_settings(), webhook=webhook))
        elif worker:
            asyncio.run(run_worker(get_settings(), concurrency=concurrency))
        else:
            asyncio.run(run_bot(get_settings(), webhook=webhook))
    except KeyboardInterrupt:
        typer.echo("已停止 (stopped).")
    except RuntimeError as error:
        fail(str(error))


@app.command("deliver")
def deliver_command() -> None:
    """One more outbox deliverer for Telegram (the bot delivers too): for a deployment that runs several
    (docs/deploy.md); /healthz, /readyz and /metrics on MINHU_HEALTH_PORT when set."""
    from bot.app import run_deliverer

    try:
        asyncio.run(run_deliverer(get_settings()))
    except KeyboardInterrupt:
        typer.echo("已停止 (stopped).")
    except RuntimeError as error:
        fail(str(error))


@app.command("sweep")
def sweep_command(
    every: Annotated[
        float,
        typer.Option(
            help="Sweep every this many seconds until stopped (a sweeper process of a deployment, with "
            "/healthz, /readyz and /metrics on MINHU_HEALTH_PORT when set); 0: once.",
            min=0,
        ),
    ] = 0.0,
) -> None:
    """One deadline sweep (escalate overdue tickets, auto-close unrated ones) and one privacy sweep (erase
    contact details and conversations kept past their time); with --every, for as long as it runs."""
    from app.health import Health, health_server
    from app.wiring import open_service
    from minhu.sweeper import forget_expired_forever, forget_expired_once, sweep_forever, sweep_once

    async def forever() -> None:
        settings = get_settings()
        async with open_service(settings) as service:
            health = Health(service, redis_url=settings.redis_url or None)
            async with health_server(health, settings.dashboard_host, settings.health_port):
                await asyncio.gather(sweep_forever(service, every), forget_expired_forever(service, settings))

    if every:
        try:
            asyncio.run(forever())
        except KeyboardInterrupt:
            typer.echo("已停止 (stopped).")
        return

    async def once() -> None:
        settings = get_settings()
        async with open_service(settings) as service:
            escalated, closed = await sweep_once(service)
            erased, deleted = await forget_expired_once(service, settings)
        typer.echo(
            f"escalated {len(escalated)}, auto-closed {len(closed)}, contacts erased {len(erased)}, "
            f"conversations deleted {deleted}"
        )

    asyncio.run(once())


@app.command("report")
def report_command(
    month: Annotated[str, typer.Option("--month", help="The month, YYYY-MM (e.g. 2026-11), Beijing time.")],
    out: Annotated[
        Path, typer.Option("--out", help="Folder for the CSV and XLSX files.", file_okay=False)
    ] = Path("reports"),
    top: Annotated[int, typer.Option("--top", min=1, help="How many responders to list.")] = 10,
) -> None:
    """The monthly report (月调度): prints the table and writes CSV and XLSX files."""
    from tickets.clock import SystemClock
    from tickets.metrics import Period
    from tickets.report import build_monthly_report, render_text, write_report

    catalogue = Catalogue.load()
    try:
        period = Period.parse_month(month, catalogue.timezone)
    except DomainError as error:
        fail(error.message)

    async def build() -> str:
        async with open_engine(get_settings()) as engine:
            # Every section from one snapshot (SQLite's transactions are serialised already).
            if engine.dialect.name == "postgresql":
                engine = engine.execution_options(isolation_level="REPEATABLE READ")
            async with session_factory(engine)() as session:
                report = await build_monthly_report(
                    session, period, now=SystemClock().now(), catalogue=catalogue, top_responders=top
                )
        files = write_report(report, out)
        written = "\n".join(f"  {path.resolve()}" for path in files.all)
        return f"{render_text(report)}\n\n已写入 (written):\n{written}"

    try:
        typer.echo(asyncio.run(build()))
    except DomainError as error:
        fail(error.message)
    except OSError as error:
        fail(f"无法写入报表文件 (cannot write the report): {error}")


@app.command("chat")
def chat_command(
    url: Annotated[str, typer.Option(help="Rasa server (REST channel).")] = "http://127.0.0.1:5005",
    sender: Annotated[str | None, typer.Option(help=SENDER_HELP)] = None,
) -> None:
    """Chat with the assistant in the terminal (Chinese input; pick a button by its number)."""
    from minhu.chat import chat_loop, terminal_sender

    asyncio.run(chat_loop(url, sender or terminal_sender()))


def main() -> None:
    try:
        app()
    except DomainError as error:
        typer.secho(error.message, fg=typer.colors.RED, err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
