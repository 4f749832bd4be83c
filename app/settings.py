"""Configuration from the environment (or a .env file). Every setting has a safe local default."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tickets.privacy import KEEP_CHAT_DAYS, KEEP_CONTACT_DAYS

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def parse_networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Addresses or CIDR blocks separated by commas or spaces ("172.30.77.0/24, 10.0.0.5"); ValueError if one
    is neither."""
    return tuple(ipaddress.ip_network(item, strict=False) for item in text.replace(",", " ").split())


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    data_dir: Path = Field(default=PROJECT_ROOT / "data", alias="MINHU_DATA_DIR")
    database_url: str = Field(default="", alias="DATABASE_URL")
    auto_close_days: int = Field(default=7, alias="MINHU_AUTO_CLOSE_DAYS", ge=1)
    # Personal data (个人信息保护法): an ended ticket's phone and address are erased this many days after it
    # ended (tickets.retention); a conversation with the assistant is deleted this many days after its last
    # message (minhu.conversations).
    keep_contact_days: int = Field(default=KEEP_CONTACT_DAYS, alias="MINHU_KEEP_CONTACT_DAYS", ge=1)
    keep_chat_days: int = Field(default=KEEP_CHAT_DAYS, alias="MINHU_KEEP_CHAT_DAYS", ge=1)
    # Intake (resident-facing): at most this many new tickets per resident per hour (0 = unlimited), and
    # a near-identical request within this many hours is linked to the open ticket (0 = off).
    max_tickets_per_hour: int = Field(default=5, alias="MINHU_MAX_TICKETS_PER_HOUR", ge=0)
    duplicate_window_hours: float = Field(default=24.0, alias="MINHU_DUPLICATE_WINDOW_HOURS", ge=0)
    # Telegram (bot/): the bot runs when a token is set. The webhook mode needs the public URL and a secret.
    telegram_bot_token: str = Field(default="", alias="TELEGRAM_BOT_TOKEN")
    telegram_api_url: str = Field(default="", alias="TELEGRAM_API_URL")  # a local Bot API server
    telegram_webhook_url: str = Field(default="", alias="TELEGRAM_WEBHOOK_URL")
    telegram_webhook_secret: str = Field(default="", alias="TELEGRAM_WEBHOOK_SECRET")
    telegram_webhook_listen: str = Field(default="127.0.0.1", alias="TELEGRAM_WEBHOOK_LISTEN")
    telegram_webhook_port: int = Field(default=8443, alias="TELEGRAM_WEBHOOK_PORT")
    # Several replicas without a load balancer: their addresses separated by commas (app/relay.RasaClient).
    rasa_url: str = Field(default="http://127.0.0.1:5005", alias="MINHU_RASA_URL")
    # Replicas (docs/deploy.md): Redis shared by the processes (e.g. redis://127.0.0.1:6379/0), for the
    # Telegram rate limit of all deliverers together (app/ratelimit.py); unset: each process its own.
    redis_url: str = Field(default="", alias="MINHU_REDIS_URL")
    telegram_rate: float = Field(default=25.0, alias="MINHU_TELEGRAM_RATE", gt=0)
    # A process's own /healthz, /readyz and /metrics (app/health.py) for processes without a web server
    # (sweeper, deliverer); 0 (the default, `make run`): none.
    health_port: int = Field(default=0, alias="MINHU_HEALTH_PORT", ge=0, le=65535)
    # `minhu run`'s own servers, on loopback: Rasa and the action server (endpoints.yml reads the latter).
    rasa_port: int = Field(default=5005, alias="MINHU_RASA_PORT", ge=1, le=65535)
    action_port: int = Field(default=5055, alias="MINHU_ACTION_PORT", ge=1, le=65535)
    # Phones are encrypted at rest (tickets.crypto). MINHU_DATA_KEY: the current key (base64 of 32 bytes);
    # MINHU_DATA_OLD_KEYS: earlier keys, comma-separated, that still decrypt. Unset: the key file in the data
    # folder (created with mode 0600 on first use).
    data_key: str = Field(default="", alias="MINHU_DATA_KEY", repr=False)
    data_old_keys: str = Field(default="", alias="MINHU_DATA_OLD_KEYS", repr=False)

    # The staff dashboard (dashboard/), started by `minhu run`. MINHU_DASHBOARD_SECRET: base64 of 32 bytes that
    # encrypt its session cookies; unset: the secret file in the data folder (mode 0600, made on first use).
    # MINHU_DASHBOARD_SECURE_COOKIES: send the cookie over HTTPS only (behind a TLS proxy).
    dashboard_host: str = Field(default="127.0.0.1", alias="MINHU_DASHBOARD_HOST")
    dashboard_port: int = Field(default=8080, alias="MINHU_DASHBOARD_PORT", ge=0, le=65535)
    dashboard_secret: str = Field(default="", alias="MINHU_DASHBOARD_SECRET", repr=False)
    dashboard_secure_cookies: bool = Field(default=False, alias="MINHU_DASHBOARD_SECURE_COOKIES")
    # Proxies in front of the dashboard whose X-Forwarded-For names the client for the per-address limits
    # (login, the web chat): addresses or CIDR blocks, comma- or space-separated. Empty (`make run`): trust
    # nobody, the peer is the client. In docker/compose.yaml: the entry's network.
    trusted_proxies: str = Field(default="", alias="MINHU_TRUSTED_PROXIES")

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_parse(cls, value: str) -> str:
        parse_networks(value)  # a typo fails at start, not by trusting nobody (or everybody) silently
        return value

    @property
    def trusted_proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return parse_networks(self.trusted_proxies)

    @property
    def dashboard_secret_file(self) -> Path:
        return self.data_dir / "dashboard.secret"

    @property
    def key_file(self) -> Path:
        return self.data_dir / "minhu.keys"

    @property
    def db_url(self) -> str:
        """DATABASE_URL, or the embedded SQLite file under the data folder. Plain postgres:// URLs get the
        asyncpg driver."""
        url = self.database_url.strip()
        if not url:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            return f"sqlite+aiosqlite:///{self.data_dir / 'minhu.db'}"
        for prefix in ("postgres://", "postgresql://"):
            if url.startswith(prefix):
                return "postgresql+asyncpg://" + url[len(prefix) :]
        return url


@lru_cache
def get_settings() -> Settings:
    return Settings()
