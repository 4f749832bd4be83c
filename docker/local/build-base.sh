#!/usr/bin/env bash
# Base images for a machine that cannot pull from Docker Hub (this project's build machines): Debian 12 from
# Debian's own mirror by debootstrap, imported as minhu-base:bookworm, and minhu-python:3.10-bookworm beside
# it (Debian 12 has no Python 3.10; see docs/deploy.md for the options measured). A real deployment does not
# need this: the Dockerfiles default to the official python:*-slim-bookworm images.
#
#   docker/local/build-base.sh            # both images (skips one that exists; --force rebuilds)
#
# Env: MINHU_DEBIAN_MIRROR (default: the mirror apt uses on this machine, else deb.debian.org),
#      MINHU_PYTHON310 (default: pyenv's newest 3.10), MINHU_BUILD_DIR (default /var/tmp/minhu-docker).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD_DIR="${MINHU_BUILD_DIR:-/var/tmp/minhu-docker}"
FORCE=""; [[ "${1:-}" == --force ]] && FORCE=1
log() { printf '[build-base] %s\n' "$*" >&2; }

mirror() {
  [[ -n "${MINHU_DEBIAN_MIRROR:-}" ]] && { echo "$MINHU_DEBIAN_MIRROR"; return; }
  local found
  found="$(grep -hs -E '^(URIs:|deb ).*debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/* \
           | grep -v security | grep -o 'https\?://[^ ]*' | head -n1 || true)"
  echo "${found:-http://deb.debian.org/debian}"
}

# What the images run besides Python: the app's interpreter (3.11, Debian's own), the shared libraries a
# CPython 3.10 built on Debian 12 links against, TensorFlow's C++ runtime, and for the compose deployment on
# this machine (compose.local.yaml) PostgreSQL 15, Redis and nginx — Debian's packages, as no official image
# can be pulled here.
PACKAGES=ca-certificates,tini,python3.11,python3.11-venv,python3-distutils,python3-lib2to3,python3-pip-whl,python3-setuptools-whl,libpython3.11,libssl3,libffi8,libsqlite3-0,libbz2-1.0
PACKAGES+=,liblzma5,zlib1g,libreadline8,libncursesw6,libuuid1,libgdbm6,libexpat1,libstdc++6,libgomp1
PACKAGES+=,postgresql-15,redis-server,nginx-light

if [[ -n "$FORCE" ]] || ! docker image inspect minhu-base:bookworm >/dev/null 2>&1; then
  rootfs="$BUILD_DIR/rootfs"
  rm -rf "$rootfs"; mkdir -p "$BUILD_DIR"
  start=$SECONDS
  log "debootstrap bookworm from $(mirror)"
  debootstrap --variant=minbase --include="$PACKAGES" bookworm "$rootfs" "$(mirror)" >"$BUILD_DIR/debootstrap.log"
  # Debian's services must not start inside the rootfs, and apt's lists are not kept in the image.
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
  log "debootstrap: $((SECONDS - start))s"
  start=$SECONDS
  tar -C "$rootfs" -c . | docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
    -c 'CMD ["/bin/bash"]' - minhu-base:bookworm >/dev/null
  log "docker import: $((SECONDS - start))s"
  rm -rf "$rootfs"
fi

if [[ -n "$FORCE" ]] || ! docker image inspect minhu-python:3.10-bookworm >/dev/null 2>&1; then
  py="${MINHU_PYTHON310:-$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.10*/bin/python3.10 2>/dev/null \
        | sort -t. -k3,3nr | head -n1)}"
  [[ -x "$py" ]] || { log "no Python 3.10 found (set MINHU_PYTHON310)"; exit 1; }
  prefix="$("$py" -c 'import sys; print(sys.prefix)')"
  ctx="$BUILD_DIR/python310"
  rm -rf "$ctx"; mkdir -p "$ctx"
  # The interpreter built on this Debian 12 (pyenv), without its installed packages and tests: the same
  # CPython the host's Rasa venv runs (scripts/rasa-env.sh).
  tar -C "$prefix" -c --exclude='lib/python3.10/site-packages/*' --exclude='lib/python3.10/test' \
      --exclude='__pycache__' bin include lib | tar -C "$ctx" -x
  start=$SECONDS
  docker build -q -t minhu-python:3.10-bookworm -f "$REPO_ROOT/docker/local/Dockerfile.python310" "$ctx" >/dev/null
  log "minhu-python:3.10-bookworm: $((SECONDS - start))s"
  rm -rf "$ctx"
fi
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E '^minhu-(base|python)' >&2
