#!/usr/bin/env bash
# Create (or reuse) the Python 3.10 virtual environment that runs Rasa Open Source 3.6.
#
# The app itself runs on Python 3.11 and talks to Rasa only over HTTP; Rasa 3.6 supports no
# Python newer than 3.10, so it lives in its own venv OUTSIDE the repo, in a cache dir keyed by
# the hash of the exact pins (nlu/rasa-constraints.txt) + the interpreter version. Fresh clones on
# the same machine therefore reuse the same venv, and a change of pins builds a new one.
#
# Usage:
#   RASA_VENV=$(scripts/rasa-env.sh)          # ensure the venv; last stdout line = venv path
#   scripts/rasa-env.sh --print-path          # only print where the venv is/would be (no install)
#   scripts/rasa-env.sh --freeze              # re-resolve unpinned deps and rewrite the pin file
#   scripts/rasa-env.sh --force               # reinstall even if the marker file exists
#
# Env:
#   MINHU_CACHE     cache root (default ~/.cache/minhu)
#   MINHU_PYTHON310 explicit path to a python3.10 interpreter
#
# Progress goes to stderr (with MINHU_SCRIPT_LOG=FILE: to FILE, and a one-line note on the terminal; see
# scripts/quiet.sh); stdout carries only the venv path (last line).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONSTRAINTS="$REPO_ROOT/nlu/rasa-constraints.txt"
# Top-level requirements; every version (these and their dependencies) is pinned by $CONSTRAINTS.
REQUIREMENTS=("rasa==3.6.21" "jieba" "opencc" "prometheus-client")
CACHE_ROOT="${MINHU_CACHE:-$HOME/.cache/minhu}"

# Telemetry and (telemetry-gated) Sentry error reporting off for everything we start.
export RASA_TELEMETRY_ENABLED=false
export PIP_DISABLE_PIP_VERSION_CHECK=1

SCRIPT_NAME=rasa-env
# shellcheck source=scripts/quiet.sh
source "$(dirname "${BASH_SOURCE[0]}")/quiet.sh"  # log, note, die; MINHU_SCRIPT_LOG

mode=ensure
for arg in "$@"; do
  case "$arg" in
    --print-path) mode=print ;;
    --freeze) mode=freeze ;;
    --force) FORCE=1 ;;
    -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
    *) die "unknown argument: $arg" ;;
  esac
done

find_python310() {
  local cand
  if [[ -n "${MINHU_PYTHON310:-}" ]]; then
    "$MINHU_PYTHON310" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null \
      && { echo "$MINHU_PYTHON310"; return 0; }
    return 2
  fi
  # A pyenv shim named python3.10 may exist on PATH and still refuse to run, so try it.
  if command -v python3.10 >/dev/null 2>&1 \
     && python3.10 -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1; then
    command -v python3.10; return 0
  fi
  local pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
  # Newest 3.10.x first.
  while IFS= read -r cand; do
    if [[ -x "$cand" ]] && "$cand" -c 'import venv' >/dev/null 2>&1; then
      echo "$cand"; return 0
    fi
  done < <(ls -d "$pyenv_root"/versions/3.10*/bin/python3.10 2>/dev/null | sort -t. -k3,3nr)
  for cand in /usr/bin/python3.10 /usr/local/bin/python3.10; do
    [[ -x "$cand" ]] && "$cand" -c 'import venv' >/dev/null 2>&1 && { echo "$cand"; return 0; }
  done
  return 1
}

rc=0; PY310="$(find_python310)" || rc=$?
if [[ $rc -eq 2 ]]; then
  die "MINHU_PYTHON310=$MINHU_PYTHON310 is not a working Python 3.10"
elif [[ $rc -ne 0 ]]; then
  die "python3.10 is required for Rasa 3.6 (install with pyenv install 3.10)"
fi
PY_VERSION="$("$PY310" -c 'import platform; print(platform.python_version())')"

# pip output filter: one short line per collected package, hide the noise about the
# machine's local file:// mirrors not carrying a package. Full log kept in $1.
pip_progress() {
  local logfile="$1"
  awk -v logfile="$logfile" '
    { print > logfile; fflush(logfile) }
    /is ignored: it is neither a file nor a directory/ { next }
    /^Collecting / { n++; printf "[rasa-env]   (%d) %s\n", n, $0 > "/dev/stderr"; next }
    /^Installing collected packages/ { printf "[rasa-env]   installing %d packages...\n", n > "/dev/stderr"; next }
    /^Successfully installed/ { printf "[rasa-env]   done.\n" > "/dev/stderr"; next }
    /ERROR|error:/ { print > "/dev/stderr" }
  '
}

run_pip() {  # run_pip <venv> <logfile> args...
  local venv="$1" logfile="$2"; shift 2
  set +e
  "$venv/bin/python" -m pip install --progress-bar off "$@" 2>&1 | pip_progress "$logfile"
  local rc=${PIPESTATUS[0]}
  set -e
  if [[ $rc -ne 0 ]]; then
    log "pip failed (exit $rc); last lines of $logfile:"
    grep -v 'is ignored: it is neither a file' "$logfile" | tail -25 >&2
    return $rc
  fi
}

disable_rasa_telemetry_globally() {
  # Belt and braces: besides RASA_TELEMETRY_ENABLED=false (set by our scripts), record the
  # opt-out in ~/.config/rasa/global.yml so a bare `rasa` call never reports either.
  local venv="$1"
  if ! grep -qs 'enabled: false' "$HOME/.config/rasa/global.yml"; then
    "$venv/bin/rasa" telemetry disable >/dev/null 2>&1 || log "warning: 'rasa telemetry disable' failed"
  fi
}

if [[ "$mode" == freeze ]]; then
  tmp="$(mktemp -d "${TMPDIR:-/tmp}/rasa-freeze.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  log "freeze: resolving ${REQUIREMENTS[*]} from scratch with $PY310 ($PY_VERSION)"
  "$PY310" -m venv "$tmp/venv"
  # No constraints at all while resolving (the machine-wide pip constraint only caps torch,
  # which Rasa does not use, but a pin file must come from a clean resolution).
  PIP_CONSTRAINT="" run_pip "$tmp/venv" "$tmp/pip.log" --upgrade pip setuptools wheel
  PIP_CONSTRAINT="" run_pip "$tmp/venv" "$tmp/pip.log" "${REQUIREMENTS[@]}"
  "$tmp/venv/bin/python" -m pip check >&2 || die "pip check failed on the fresh resolution"
  {
    echo "# Exact pins for the Rasa venv (scripts/rasa-env.sh). Generated by"
    echo "#   scripts/rasa-env.sh --freeze"
    echo "# from a clean install of: ${REQUIREMENTS[*]}  on Python $PY_VERSION ($(uname -m))."
    echo "# Do not edit by hand; the venv cache key is the hash of this file."
    "$tmp/venv/bin/python" -m pip freeze --all | LC_ALL=C sort -f
  } > "$CONSTRAINTS.new"
  mv "$CONSTRAINTS.new" "$CONSTRAINTS"
  log "wrote $CONSTRAINTS ($(grep -vc '^#' "$CONSTRAINTS") pins)"
  rm -rf "$tmp"; trap - EXIT
  mode=ensure
fi

[[ -f "$CONSTRAINTS" ]] || die "$CONSTRAINTS is missing; run scripts/rasa-env.sh --freeze"

KEY="$( { cat "$CONSTRAINTS"; printf '%s\n' "${REQUIREMENTS[@]}" "python=$PY_VERSION" "$(uname -m)"; } \
        | sha256sum | cut -c1-12)"
VENV="$CACHE_ROOT/rasa-venv-$KEY"
MARKER="$VENV/.minhu-install-ok"

if [[ "$mode" == print ]]; then
  echo "$VENV"; exit 0
fi

if [[ -f "$MARKER" && -z "${FORCE:-}" && -x "$VENV/bin/rasa" ]]; then
  echo "$VENV"; exit 0
fi

mkdir -p "$CACHE_ROOT"
# Serialise concurrent callers (e.g. two scripts started at once on a fresh machine).
exec 9>"$CACHE_ROOT/rasa-venv-$KEY.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9
fi
if [[ -f "$MARKER" && -z "${FORCE:-}" && -x "$VENV/bin/rasa" ]]; then
  echo "$VENV"; exit 0
fi

start=$SECONDS
note "正在准备 Rasa 运行环境…(只在第一次或依赖变化时,约需十几分钟${MINHU_SCRIPT_LOG:+,进度见 $MINHU_SCRIPT_LOG})"
log "creating $VENV with $PY310 ($PY_VERSION)"
rm -rf "$VENV"
"$PY310" -m venv "$VENV"
LOG="$VENV/pip-install.log"
# Our pin file replaces (not adds to) the machine-wide pip constraint file.
export PIP_CONSTRAINT="$CONSTRAINTS"
log "installing pinned pip/setuptools/wheel"
run_pip "$VENV" "$LOG" --upgrade pip setuptools wheel
log "installing ${REQUIREMENTS[*]} (exact pins from nlu/rasa-constraints.txt)"
run_pip "$VENV" "$LOG" "${REQUIREMENTS[@]}"
"$VENV/bin/python" -m pip check >&2 || die "pip check failed in $VENV"
"$VENV/bin/python" - <<'EOF' >&2 || die "smoke import failed in $VENV"
import jieba, opencc, rasa
assert opencc.OpenCC("t2s").convert("電梯壞了") == "电梯坏了"
print(f"[rasa-env]   rasa {rasa.__version__}, jieba {jieba.__version__}, opencc OK")
EOF
disable_rasa_telemetry_globally "$VENV"
printf 'python=%s\nconstraints=%s\ninstalled=%s\n' "$PY_VERSION" "$KEY" "$(date -u +%FT%TZ)" > "$MARKER"
log "ready in $((SECONDS - start))s"
echo "$VENV"
