#!/usr/bin/env bash
# Train the Rasa model only when its inputs changed.
#
# The model is written to models/minhu-<hash>.tar.gz where <hash> covers config.yml, domain.yml,
# all Rasa training data (nlu/**/*.yml|yaml, plus dialogue/ once it exists), the jieba user
# dictionaries (nlu/jieba/*), the custom components (nlu/components/*.py; not nlu/rasa_server.py, which
# patches the server, not the model, nor nlu/emergency_net.py, the life-safety keyword net the emergency
# component reads at run time) and the Rasa pin file.
# If that file exists, nothing is trained. Training progress goes to stderr, or with MINHU_SCRIPT_LOG=FILE
# to FILE with a one-line note on the terminal (scripts/quiet.sh); the LAST stdout line is the model path:
#
#   MODEL=$(scripts/rasa-train.sh)            # train if needed
#   scripts/rasa-train.sh --print-path        # where the model for the current inputs is/would be
#   scripts/rasa-train.sh --force             # retrain even if the model exists
#   scripts/rasa-train.sh --nlu-only          # `rasa train nlu` (faster; enough for /model/parse)
#
# Env: MINHU_CACHE (default ~/.cache/minhu) for the Rasa venv and Rasa's training cache;
#      MINHU_KEEP_MODELS (default 3) how many minhu-*.tar.gz to keep in models/.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
CACHE_ROOT="${MINHU_CACHE:-$HOME/.cache/minhu}"

SCRIPT_NAME=rasa-train
# shellcheck source=scripts/quiet.sh
source "$(dirname "${BASH_SOURCE[0]}")/quiet.sh"  # log, note, die; MINHU_SCRIPT_LOG

mode=train; force=""; what=""
for arg in "$@"; do
  case "$arg" in
    --print-path) mode=print ;;
    --force) force=1 ;;
    --nlu-only) what=nlu ;;
    -h|--help) sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
    *) die "unknown argument: $arg" ;;
  esac
done

for f in config.yml domain.yml nlu/rasa-constraints.txt; do
  [[ -f "$f" ]] || die "$f is missing"
done

# Training data folders given to `rasa train --data`. nlu/ holds NLU data (non-YAML files there,
# e.g. the pin file, jieba dictionaries and Python components, are ignored by Rasa's loader).
DATA_DIRS=(nlu)
[[ -d dialogue ]] && DATA_DIRS+=(dialogue)

# Every input that changes the trained model, in a stable order.
input_files() {
  printf '%s\n' config.yml domain.yml nlu/rasa-constraints.txt
  find "${DATA_DIRS[@]}" -type f \( -name '*.yml' -o -name '*.yaml' \) -not -path '*/__pycache__/*'
  find nlu/components -type f -name '*.py' -not -path '*/__pycache__/*'
  [[ -d nlu/jieba ]] && find nlu/jieba -type f
  true
}
hash_files() {  # stdin: file list -> one sha256 over (path, content) pairs
  LC_ALL=C sort -u | while IFS= read -r f; do
    printf '%s  %s\n' "$(sha256sum < "$f" | cut -c1-64)" "$f"
  done | sha256sum | cut -c1-12
}

HASH="$(input_files | hash_files)"
# The variant trained (full vs --nlu-only) is part of the name so both can coexist.
NAME="minhu-${what:+nlu-}$HASH"
MODEL="$REPO_ROOT/models/$NAME.tar.gz"

if [[ "$mode" == print ]]; then echo "$MODEL"; exit 0; fi
if [[ -f "$MODEL" && -z "$force" ]]; then
  log "up to date: $MODEL"
  echo "$MODEL"; exit 0
fi

RASA_VENV="$("$REPO_ROOT/scripts/rasa-env.sh" | tail -n1)"
[[ -x "$RASA_VENV/bin/rasa" ]] || die "no rasa in $RASA_VENV"

export RASA_TELEMETRY_ENABLED=false
export PYTHONPATH="$REPO_ROOT${PYTHONPATH:+:$PYTHONPATH}"   # nlu.components.* importable
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
export SQLALCHEMY_SILENCE_UBER_WARNING=1
export LOG_LEVEL_LIBRARIES="${LOG_LEVEL_LIBRARIES:-ERROR}"
export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore}"
# Rasa's own training cache fingerprints component configs, code of the component class and
# training data, but NOT the contents of jieba dictionary files. Key the cache folder by the
# dictionaries (and components/pins) so a dictionary edit never reuses stale tokenization.
CACHE_KEY="$( { find nlu/components -type f -name '*.py' -not -path '*/__pycache__/*'; \
               [[ -d nlu/jieba ]] && find nlu/jieba -type f; echo nlu/rasa-constraints.txt; } | hash_files)"
export RASA_CACHE_DIRECTORY="$CACHE_ROOT/rasa-train-cache/$CACHE_KEY"
mkdir -p "$RASA_CACHE_DIRECTORY"
# Keep the two most recently used cache folders only.
ls -1dt "$CACHE_ROOT"/rasa-train-cache/*/ 2>/dev/null | tail -n +3 | xargs -r rm -rf

mkdir -p models
tmp_out="$(mktemp -d "$REPO_ROOT/models/.train-XXXXXX")"
trap 'rm -rf "$tmp_out"' EXIT

log "training $NAME (data: ${DATA_DIRS[*]}) with $RASA_VENV/bin/rasa"
note "正在训练模型…(几分钟到十几分钟${MINHU_SCRIPT_LOG:+,进度见 $MINHU_SCRIPT_LOG})"
start=$SECONDS
# Rasa prints to stdout as well; send everything to stderr so stdout carries only the path.
if [[ -z "$what" ]]; then
  cmd=(train --config config.yml --domain domain.yml --data "${DATA_DIRS[@]}")
else
  cmd=(train nlu --config config.yml --domain domain.yml --nlu nlu)
fi
"$RASA_VENV/bin/rasa" "${cmd[@]}" --out "$tmp_out" --fixed-model-name "$NAME" \
  1>&2 || die "rasa train failed"
[[ -f "$tmp_out/$NAME.tar.gz" ]] || die "rasa train produced no $NAME.tar.gz in $tmp_out"
mv -f "$tmp_out/$NAME.tar.gz" "$MODEL"
log "trained in $((SECONDS - start))s: $MODEL ($(du -h "$MODEL" | cut -f1))"

# Prune old models (by mtime), keeping the newest MINHU_KEEP_MODELS.
keep="${MINHU_KEEP_MODELS:-3}"
ls -1t "$REPO_ROOT"/models/minhu-*.tar.gz 2>/dev/null | tail -n +"$((keep + 1))" | xargs -r rm -f
echo "$MODEL"
