"""The one step of the app image that `minhu` has no command of its own for: `python docker/roles.py migrate`,
run once after `minhu db upgrade` (docker/entrypoint.sh). Every long-running process is a `minhu` command now
(`minhu web`, `minhu deliver`, `minhu sweep --every 60`, `minhu bot`)."""

from __future__ import annotations

import asyncio
import sys

from app.settings import Settings, get_settings
from app.wiring import open_service


async def migrate(settings: Settings) -> None:
    """After `minhu db upgrade`, once before the others start (compose: service_completed_successfully):
    Rasa's tracker schema beside the app's tables, and the demo org when the database has no streets."""
    from minhu.runner import DEMO_ORG, load_demo_org_if_empty
    from minhu.stack import prepare_tracker_store

    await prepare_tracker_store(settings)
    async with open_service(settings) as service:
        if await load_demo_org_if_empty(service):
            print(f"demo org loaded from {DEMO_ORG.name}", flush=True)


ROLES = {"migrate": migrate}


def main(argv: list[str]) -> None:
    if len(argv) != 1 or argv[0] not in ROLES:
        raise SystemExit(f"usage: roles.py {'|'.join(ROLES)}")
    asyncio.run(ROLES[argv[0]](get_settings()))


if __name__ == "__main__":
    main(sys.argv[1:])
