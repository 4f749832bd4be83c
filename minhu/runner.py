"""`minhu run`: the product on one machine. On a migrated database (demo org loaded on first start) it
keeps the deadline sweeper (escalation and auto-close) running, starts the Telegram bot when a token is set
and, unless told otherwise, the assistant (action server + Rasa) and a terminal chat with it."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from pathlib import Path

import structlog
from sqlalchemy import func, select

from app.logs import log_to_file
from app.settings import Settings
from app.wiring import open_service
from bot.app import telegram_bot
from minhu.chat import chat_loop, terminal_sender
from minhu.dashboard_server import dashboard_line, dashboard_server
from minhu.stack import local_stack
from minhu.sweeper import forget_expired_forever, sweep_forever
from tickets.db import unit_of_work
from tickets.models import Street
from tickets.org import load_org, parse_org
from tickets.service import TicketService

log = structlog.get_logger()
DEMO_ORG = Path(__file__).resolve().parent.parent / "tickets" / "data" / "demo_org.yml"


async def load_demo_org_if_empty(service: TicketService) -> bool:
    """First start on an empty database: load the demo org so the product can be tried at once."""
    async with unit_of_work(service.sessions) as session:
        if await session.scalar(select(func.count()).select_from(Street)):
            return False
        await load_org(session, parse_org(DEMO_ORG), service.catalogue)
    return True


def warn_if_calendar_runs_out(service: TicketService, within: timedelta = timedelta(days=60)) -> None:
    """Deadlines of up to 10 working days need next year's 调休 data well before New Year."""
    last = service.calendar.covered_until()
    if date.today() + within > last:
        log.warning(
            "official holiday data (调休) runs out: upgrade chinesecalendar",
            covered_until=last.isoformat(),
            hint="pip install -U chinesecalendar; until then working days past that day are provisional "
            "(statutory holidays, no make-up workdays)",
        )


async def run(
    settings: Settings,
    *,
    sweep_every: float = 60.0,
    assistant: bool = True,
    chat: bool = True,
    sender: str | None = None,
) -> None:
    logs = settings.data_dir / "logs"
    if assistant and chat:  # the terminal is the resident's: everything else goes to the log
        log_to_file(logs / "minhu.log")
    async with open_service(settings) as service:
        if await load_demo_org_if_empty(service):
            log.info("demo org loaded", file=str(DEMO_ORG))
        warn_if_calendar_runs_out(service)
        log.info("minhu running", database=settings.db_url.split("@")[-1])
        sweeper = asyncio.create_task(sweep_forever(service, sweep_every))
        forgetter = asyncio.create_task(forget_expired_forever(service, settings))
        try:
            if not assistant:
                async with dashboard_server(settings, service) as dashboard, telegram_bot(settings, service):
                    print(dashboard_line(dashboard), flush=True)
                    await sweeper
                return
            async with (
                dashboard_server(settings, service) as dashboard,
                local_stack(settings) as url,
                telegram_bot(settings, service, rasa_url=url),
            ):
                print(
                    f"民呼已启动(Rasa {url},动作服务器 127.0.0.1:{settings.action_port}),运行日志在 {logs}。"
                )
                print(dashboard_line(dashboard))
                if chat:
                    await chat_loop(url, sender or terminal_sender())
                else:
                    await asyncio.Event().wait()
        finally:
            # Wait for the loops to stop before the service's engine closes: a round cut off mid-query must
            # give its connection back first (SQLite's connection threads keep the process alive otherwise).
            for loop in (sweeper, forgetter):
                loop.cancel()
            await asyncio.gather(sweeper, forgetter, return_exceptions=True)
