"""The processes of the app image that `minhu` has no command of their own for (yet), each a few lines over
what `minhu run` already wires: `python docker/roles.py web|deliverer|sweeper|migrate`.

Missing in the CLI, and so done here rather than re-architected: `minhu web` (the dashboard and web chat
alone: `minhu run --no-assistant` also sweeps and starts the bot), `minhu deliver` (the outbox delivery
without receiving updates: `minhu bot` always does both), a sweeper loop (`minhu sweep` is one round) and a
migrate step that also prepares Rasa's tracker schema and the demo org on an empty database."""

from __future__ import annotations

import asyncio
import sys

from app.settings import Settings, get_settings
from app.wiring import open_service


async def web(settings: Settings) -> None:
    from minhu.dashboard_server import dashboard_line, dashboard_server

    async with open_service(settings) as service, dashboard_server(settings, service) as dashboard:
        print(dashboard_line(dashboard), flush=True)
        await asyncio.Event().wait()


async def deliverer(settings: Settings) -> None:
    from bot.app import BotConfig, build_application, minhu_of
    from bot.delivery import Delivery, deliver_forever

    if not settings.telegram_bot_token:
        raise SystemExit("请先设置 TELEGRAM_BOT_TOKEN (set TELEGRAM_BOT_TOKEN first)")
    async with open_service(settings) as service:
        application = build_application(BotConfig.from_settings(settings), service)
        async with application:  # the Bot API client only: no polling, no webhook
            await deliver_forever(Delivery(minhu_of(application), application.bot))


async def sweeper(settings: Settings, every: float = 60.0) -> None:
    from minhu.sweeper import forget_expired_forever, sweep_forever

    async with open_service(settings) as service:
        await asyncio.gather(sweep_forever(service, every), forget_expired_forever(service, settings))


async def migrate(settings: Settings) -> None:
    """After `minhu db upgrade`, once before the others start (compose: service_completed_successfully):
    Rasa's tracker schema beside the app's tables, and the demo org when the database has no streets."""
    from minhu.runner import DEMO_ORG, load_demo_org_if_empty
    from minhu.stack import prepare_tracker_store

    await prepare_tracker_store(settings)
    async with open_service(settings) as service:
        if await load_demo_org_if_empty(service):
            print(f"demo org loaded from {DEMO_ORG.name}", flush=True)


ROLES = {"web": web, "deliverer": deliverer, "sweeper": sweeper, "migrate": migrate}


def main(argv: list[str]) -> None:
    if len(argv) != 1 or argv[0] not in ROLES:
        raise SystemExit(f"usage: roles.py {'|'.join(ROLES)}")
    asyncio.run(ROLES[argv[0]](get_settings()))


if __name__ == "__main__":
    main(sys.argv[1:])
