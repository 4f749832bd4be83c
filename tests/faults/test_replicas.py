"""Faults under a stream of residents' conversations, through two Rasa replicas and two action servers
(local processes as minhu/stack.py starts them, no docker): Rasa's conversations in PostgreSQL (a private
initdb cluster, schema `rasa`), its locks in a private redis-server; the residents' relay (the web chat's)
sends each sender to one replica and fails over when its connection is refused (app/relay.RasaClient).
Each fault is injected while residents register requests; afterwards the database must show nothing lost
and nothing twice (tests/faults/residents.check), and what each resident saw is printed."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from app.relay import replicas_for
from app.settings import Settings
from minhu.stack import (
    ACTIONS_REQUEST_MAX_SIZE,
    RASA_TOKEN_ENV,
    RELAY_SECRET_ENV,
    REQUEST_MAX_SIZE,
    Child,
    action_server,
    prepare_tracker_store,
    rasa_server,
    run_secret,
    server_env,
)
from tests.conftest import write_test_key_file
from tests.e2e.conftest import STARTUP_TIMEOUT, _script, free_port
from tests.faults.conftest import PrivateRedis, pause, restart, resume
from tests.faults.residents import Resident, Residents, check, outcome, report, residents
from tests.pgcluster import PrivatePostgres
from tests.test_health import sample
from tickets.service import TicketService

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

RESIDENTS = 8  # at once, per fault
SETTLE_S = 90.0  # after the fault: saved requests registered (actions/runtime.REPLAY_EVERY_S 20 s)


@dataclass
class Replica:
    rasa: Child
    actions: Child

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rasa.port}"


@dataclass
class Deployment:
    replicas: list[Replica]

    @property
    def rasa_url(self) -> str:
        return ",".join(r.url for r in self.replicas)

    def replica_of(self, sender: str) -> Replica:
        first = replicas_for(sender, [r.url for r in self.replicas])[0]
        return next(r for r in self.replicas if r.url == first)

    def children(self) -> list[Child]:
        return [c for r in self.replicas for c in (r.actions, r.rasa)]


ENDPOINTS = """\
action_endpoint:
  url: http://127.0.0.1:{action_port}/webhook
tracker_store:
  type: SQL
  url: ${{MINHU_TRACKER_URL}}
lock_store:  # as docker/rasa/endpoints.yml
  type: nlu.lock_store.LeasedRedisLockStore
  url: 127.0.0.1
  port: {redis_port}
  db: 1
  key_prefix: minhu
"""


@pytest.fixture(scope="module")
def deployment(
    rasa: Path, cluster: PrivatePostgres, redis_server: PrivateRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """Two Rasa replicas (each with its action server) on the private cluster and Redis, healthy."""
    venv = rasa.parent.parent
    model = os.environ.get("MINHU_E2E_MODEL") or _script("rasa-train.sh")
    secret, token = run_secret(RELAY_SECRET_ENV), run_secret(RASA_TOKEN_ENV)
    replicas = []
    for i in (1, 2):
        data = tmp_path_factory.mktemp(f"replica{i}")
        write_test_key_file(data)
        settings = Settings(MINHU_DATA_DIR=data, DATABASE_URL=cluster.url("minhu"))
        action_port, rasa_port = free_port(), free_port()
        env = server_env(settings, action_port) | {RELAY_SECRET_ENV: secret}
        endpoints = data / "endpoints.yml"
        endpoints.write_text(ENDPOINTS.format(action_port=action_port, redis_port=redis_server.port))
        rasa_env = env | {"SANIC_REQUEST_MAX_SIZE": str(REQUEST_MAX_SIZE)}
        server = rasa_server(venv, model, rasa_port, data / "rasa.log", rasa_env, token, str(endpoints))
        actions_env = env | {"SANIC_REQUEST_MAX_SIZE": str(ACTIONS_REQUEST_MAX_SIZE)}
        replicas.append(Replica(server, action_server(action_port, data, actions_env)))
        if i == 1:
            asyncio.run(prepare_tracker_store(settings))
    found = Deployment(replicas)
    try:
        for child in found.children():
            child.start()
        for child in found.children():
            child.wait_healthy(STARTUP_TIMEOUT)
        yield found
    finally:
        for child in found.children():
            child.stop()


Fault = Callable[[], Awaitable[object]]


async def run_with_fault(
    core: TicketService,
    deployment: Deployment,
    name: str,
    fault: Fault,
    *,
    at: float = 1.5,
    before: Callable[[Resident, str], Awaitable[None]] | None = None,
) -> list[Resident]:
    """RESIDENTS conversations, started 0.3 s apart; `fault` injected `at` seconds in; then wait until the
    database shows every resident's ticket (at most SETTLE_S), check, and print what they saw."""
    people = residents(name, RESIDENTS)
    started = time.monotonic()
    async with Residents(core, deployment.rasa_url) as chat:
        for resident in people:  # each consented on the page before the fault
            await chat.consent(resident)

        async def one(i: int, resident: Resident) -> Resident:
            await asyncio.sleep(0.3 * i)
            return await chat.converse(resident, before=before)

        async def inject() -> None:
            await asyncio.sleep(at)
            await fault()

        # Every task to its end (a resident's error must not leave the fault half done: the server stopped
        # and never started again fails every later test), then the first error, if any.
        done = await asyncio.gather(
            inject(), *(one(i, r) for i, r in enumerate(people)), return_exceptions=True
        )
        if errors := [result for result in done if isinstance(result, BaseException)]:
            raise errors[0]
        deadline = time.monotonic() + SETTLE_S
        while True:
            found = await outcome(core, people)
            settled = all(found.tickets[r.sender] for r in people if not r.stuck) and not found.unanswered
            if settled or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
    print(f"\n{report(name, people, found)}\n  ({time.monotonic() - started:.0f} s)")
    check(people, found)
    return people


async def test_postgresql_restarted_under_load(
    deployment: Deployment, cluster: PrivatePostgres, core: TicketService
) -> None:
    async def crash_and_start() -> None:
        await asyncio.to_thread(cluster.crash)
        await asyncio.sleep(3)
        await asyncio.to_thread(cluster.start)

    await run_with_fault(core, deployment, "pg-restart", crash_and_start)


async def test_redis_stopped_and_started(
    deployment: Deployment, redis_server: PrivateRedis, core: TicketService
) -> None:
    readiness: list[str] = []

    async def stop_and_start() -> None:
        await asyncio.to_thread(redis_server.stop)
        readiness.append(await lock_store_state(deployment.replicas[0]))
        await asyncio.sleep(3)
        await asyncio.to_thread(redis_server.start)
        readiness.append(await lock_store_state(deployment.replicas[0]))

    await run_with_fault(core, deployment, "redis-restart", stop_and_start)
    assert readiness[0] != "ok" and readiness[1] == "ok", readiness  # Rasa's /readyz follows its lock store


async def lock_store_state(replica: Replica) -> str:
    """The lock store's line of a Rasa replica's /readyz (nlu/health.py)."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{replica.url}/readyz", timeout=aiohttp.ClientTimeout(total=10)) as answer,
    ):
        return str((await answer.json()).get("lock_store"))


async def test_a_rasa_replica_killed_mid_conversation(deployment: Deployment, core: TicketService) -> None:
    victim = deployment.replicas[0].rasa

    async def kill() -> None:
        victim.kill()  # SIGKILL to its process group, in the middle of the residents' forms
        await restart(victim, STARTUP_TIMEOUT)  # back meanwhile (a minute): its senders return to it

    await run_with_fault(core, deployment, "rasa-kill", kill, at=3.0)


async def test_a_turn_in_flight_when_its_rasa_replica_is_killed(
    deployment: Deployment, core: TicketService
) -> None:
    """The first form answer of a resident of replica 1 is in that Rasa's hands when it is killed: its action
    server is held still (SIGSTOP) as the turn is sent, so the turn cannot end before the kill. The relay
    keeps the message ("暂时联系不上…已经保存") and replays it on replica 2, which must take it once and answer
    it well within the minute a resident waits before saying it again."""
    victim = deployment.replicas[0]
    in_flight = asyncio.Event()
    chosen: list[Resident] = []

    async def before(resident: Resident, text: str) -> None:
        if text != resident.problem and deployment.replica_of(resident.sender) is victim and not chosen:
            chosen.append(resident)
            pause(victim.actions)  # Rasa calls it to validate this answer, and waits
            in_flight.set()

    async def kill_in_flight() -> None:
        await asyncio.wait_for(in_flight.wait(), 120)
        await asyncio.sleep(1.0)  # the turn is in Rasa 1, waiting for its action server
        victim.rasa.kill()
        resume(victim.actions)
        print(f"\n  killed Rasa 1 with {chosen[0].sender}'s turn in flight")
        await restart(victim.rasa, STARTUP_TIMEOUT)

    await run_with_fault(core, deployment, "rasa-kill-in-flight", kill_in_flight, at=0, before=before)
    (resident,) = chosen
    assert resident.waits and max(resident.waits) < 30, resident.waits


VALIDATED = 'minhu_action_duration_seconds_count{action="validate_request_form",outcome="ok"}'


async def validations(actions: Child) -> float:
    """How many form validations the action server has answered (its /metrics, actions/health.py)."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{actions.port}/metrics") as answer,
    ):
        return sample(await answer.text(), VALIDATED) or 0.0


@pytest.mark.parametrize("moment", ["as it submits", "at the commit"])
async def test_an_action_server_killed_while_it_registers_a_ticket(
    deployment: Deployment, core: TicketService, moment: str
) -> None:
    """The first resident on replica 1 to confirm their form: its action server is killed the moment it has
    validated the confirmation (Rasa then calls action_submit_request, which stores the ticket), or the
    moment their ticket is in the database (before or just after the action answered)."""
    victim = deployment.replicas[0]
    confirming: asyncio.Queue[tuple[Resident, float]] = asyncio.Queue()
    killed: list[str] = []

    async def before(resident: Resident, text: str) -> None:
        if text == "确认" and deployment.replica_of(resident.sender) is victim and not killed:
            killed.append(resident.sender)  # this turn submits the request through the victim's actions
            confirming.put_nowait((resident, await validations(victim.actions)))

    async def kill_on_submit() -> None:
        resident, validated = await asyncio.wait_for(confirming.get(), 120)
        for _ in range(20_000):  # at most about a minute
            if moment == "as it submits" and await validations(victim.actions) > validated:
                break
            if moment == "at the commit" and (await outcome(core, [resident])).tickets[resident.sender]:
                break
            await asyncio.sleep(0.002)
        had = (await outcome(core, [resident])).tickets[resident.sender]
        victim.actions.kill()
        print(f"\n  killed action server 1 {moment} for {resident.sender}: its ticket then {had}")
        await restart(victim.actions)

    await run_with_fault(
        core, deployment, f"actions-kill-{moment.split()[0]}", kill_on_submit, at=0, before=before
    )
