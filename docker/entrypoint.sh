#!/bin/sh
# The app image's processes, by the first argument (docker/Dockerfile.app):
#   actions    the rasa-sdk action server (:5055)
#   web        the staff dashboard and the residents' web chat (:8080), relaying to Rasa at MINHU_RASA_URL
#   bot        the Telegram bot (TELEGRAM_BOT_TOKEN): `minhu bot` (all in one), or `bot --receiver` (one)
#              and `bot --worker` (several) for the replicated deployment (docs/deploy.md)
#   deliverer  one more outbox deliverer (`minhu deliver`; safe as several, rate shared in MINHU_REDIS_URL)
#   sweeper    deadline and privacy sweeps in a loop (`minhu sweep --every 60`)
#   migrate    `minhu db upgrade`, Rasa's tracker schema, the demo org on an empty database; then exits
#   health     liveness: the /healthz of the process this container runs (the image's HEALTHCHECK)
#   ready      readiness: its /readyz (database, Redis when set, Rasa when it relays): compose's checks
# web and the action server serve /healthz and /readyz on their own ports (MINHU_DASHBOARD_PORT,
# MINHU_ACTION_PORT; the action server's from actions/health.py); bot, deliverer and sweeper on
# MINHU_HEALTH_PORT (set in the image).
#   minhu ARGS the command line (`minhu staff add …`); anything else is run as a command (`sh`).
set -eu
role="${1:-web}"
[ "$#" -gt 0 ] && shift
case "$role" in
  actions|web|bot|deliverer|sweeper) echo "$role" > /tmp/minhu-role ;;
esac

probe() {  # probe URL...: healthy when one of them answers 200
  exec python - "$@" <<'PY'
import sys, urllib.request
for url in sys.argv[1:]:
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            if response.status == 200:
                sys.exit(0)
    except Exception:
        pass
sys.exit(1)
PY
}

case "$role" in
  actions)
    # The action server receives Rasa's whole tracker: a looser request cap than Rasa's own.
    export SANIC_REQUEST_MAX_SIZE="${SANIC_REQUEST_MAX_SIZE:-16777216}"
    exec python -m rasa_sdk --actions actions --port "${MINHU_ACTION_PORT:-5055}" "$@" ;;
  web) exec python -m minhu.cli web ;;
  bot) exec python -m minhu.cli bot "$@" ;;
  deliverer) exec python -m minhu.cli deliver ;;
  sweeper) exec python -m minhu.cli sweep --every 60 ;;
  migrate) python -m minhu.cli db upgrade && exec python /app/docker/roles.py migrate ;;
  health|ready)
    path=/healthz
    [ "$role" = ready ] && path=/readyz
    case "$(cat /tmp/minhu-role 2>/dev/null || true)" in
      actions) probe "http://127.0.0.1:${MINHU_ACTION_PORT:-5055}$path" ;;
      web) probe "http://127.0.0.1:${MINHU_DASHBOARD_PORT:-8080}$path" ;;
      bot|deliverer|sweeper) probe "http://127.0.0.1:${MINHU_HEALTH_PORT:-9100}$path" ;;
      *) exit 0 ;;
    esac ;;
  minhu) exec python -m minhu.cli "$@" ;;  # the CLI: `minhu staff add …`
  *) exec "$role" "$@" ;;
esac
