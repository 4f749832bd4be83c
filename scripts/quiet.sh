# Sourced by scripts/rasa-env.sh and scripts/rasa-train.sh (after they set SCRIPT_NAME): where their
# messages go, and their log / note / die.
#
# MINHU_SCRIPT_LOG=FILE (`make run`, `make test` and `minhu run` set it to data/logs/rasa-train.log):
# everything the script and the programs it runs write to stderr (pip, Rasa's training progress and
# deprecation warnings) is appended to FILE, so the terminal stays readable; the terminal gets only note()'s
# one-line messages, and on failure the last lines of FILE. Unset: all of it on stderr, as before.
if [[ -n "${MINHU_SCRIPT_LOG:-}" && -z "${MINHU_SCRIPT_NOTES:-}" ]]; then
  mkdir -p "$(dirname "$MINHU_SCRIPT_LOG")"
  exec 3>&2 2>>"$MINHU_SCRIPT_LOG"
  export MINHU_SCRIPT_NOTES=3  # a script run from this one writes its notes to the same terminal (fd 3)
elif [[ -z "${MINHU_SCRIPT_NOTES:-}" ]]; then
  exec 3>&2
fi

log() { printf '[%s] %s\n' "$SCRIPT_NAME" "$*" >&2; }
note() { printf '%s\n' "$*" >&3; }
die() {
  log "ERROR: $*"
  if [[ -n "${MINHU_SCRIPT_LOG:-}" ]]; then
    note "[$SCRIPT_NAME] 出错了 (failed): $*"
    note "日志的最后几行 (last lines of $MINHU_SCRIPT_LOG):"
    tail -n 20 "$MINHU_SCRIPT_LOG" >&3
  fi
  exit 1
}
