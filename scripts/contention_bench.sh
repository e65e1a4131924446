#!/usr/bin/env bash
# Threads on a busy machine (issue 9): runs lowbit with -t 1 and -t 2, alternating, on an idle
# machine and with one other CPU-bound process (a busy loop) holding a core, for
#   tiny: `eval ppl` of stories260K-hf on TinyStories, ctx 256, 50 windows (wall seconds);
#   1B:   `bench` of a synthetic TinyLlama-1.1B-shape checkpoint quantized W4 g32 (RTN), pp128 and
#         tg32 tokens/s;
# under four thread policies: lowbit's default (threads adapted to the load, util/threads.h) and,
# with adaptation off (LOWBIT_ADAPTIVE_THREADS=0), libgomp's default spin-then-sleep wait, a
# short spin (GOMP_SPINCOUNT=10000) and no spinning (OMP_WAIT_POLICY=passive). Medians of ROUNDS
# alternations; the section "Threads on a busy machine" of docs/PERFORMANCE.md is rewritten from
# the results by scripts/contention_report.py. Run by hand on an otherwise idle machine (about
# 15 minutes, 3 GB of disk), not in CI:
#   bash scripts/contention_bench.sh [BUILD_DIR=build] [SHARED=../shared]
# Environment: WORK (default /tmp/lowbit-perf, shared with perf_report.sh: the checkpoints are
# reused), ROUNDS (default 5), OUT (default docs/PERFORMANCE.md).
set -euo pipefail
BUILD=${1:-build}
SHARED=${2:-../shared}
WORK=${WORK:-/tmp/lowbit-perf}
ROUNDS=${ROUNDS:-5}
OUT=${OUT:-docs/PERFORMANCE.md}

cd "$(dirname "$0")/.."
LOWBIT=$(realpath "$BUILD/lowbit")
SHARED=$(realpath "$SHARED")
[[ -x $LOWBIT ]] || { echo "contention_bench: $LOWBIT not found; build first" >&2; exit 1; }
command -v python3 >/dev/null || { echo "contention_bench: python3 is needed" >&2; exit 1; }
export LOWBIT_PROGRESS=0
mkdir -p "$WORK"
RES=$WORK/contention
rm -rf "$RES"
mkdir -p "$RES"

TINY=$SHARED/models/stories260K-hf
TL=$WORK/tinyllama-1.1b
W4=$TL-w4g32
if [[ ! -f $TL/config.json ]]; then
  echo "== synth tinyllama-1.1b"
  "$LOWBIT" synth --shape tinyllama-1.1b --dtype bf16 --out "$TL" --tokenizer "$SHARED/tokenizers/llama-2"
fi
if [[ ! -f $W4/config.json ]]; then
  echo "== quantize W4 g32 (RTN)"
  "$LOWBIT" quantize --model "$TL" --out "$W4" --algo rtn --bits 4 --group-size 32 \
    --override 'lm_head:bits=8,group_size=-1,sym=true' >/dev/null
fi

HOG_PID=""
hog_start() {
  bash -c 'while :; do :; done' &
  HOG_PID=$!
  sleep 1
}
hog_stop() {
  if [[ -n $HOG_PID ]]; then
    kill "$HOG_PID" 2>/dev/null || true
    wait "$HOG_PID" 2>/dev/null || true
    HOG_PID=""
  fi
}
trap hog_stop EXIT

# policy name -> environment
policy_env() {
  case $1 in
    adaptive) echo "" ;;
    fixed-spin) echo "LOWBIT_ADAPTIVE_THREADS=0" ;;
    fixed-shortspin) echo "LOWBIT_ADAPTIVE_THREADS=0 GOMP_SPINCOUNT=10000" ;;
    fixed-passive) echo "LOWBIT_ADAPTIVE_THREADS=0 OMP_WAIT_POLICY=passive" ;;
  esac
}

run_tiny() {  # policy load threads round
  local start end
  start=$(date +%s%N)
  # shellcheck disable=SC2046
  env $(policy_env "$1") "$LOWBIT" eval ppl --model "$TINY" --text tinystories --ctx 256 \
    --limit 50 -t "$3" >/dev/null
  end=$(date +%s%N)
  printf '{"workload":"tiny","policy":"%s","load":"%s","threads":%s,"round":%s,"seconds":%s}\n' \
    "$1" "$2" "$3" "$4" "$(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.4f", (b-a)/1e9}')" \
    >>"$RES/runs.jsonl"
}

run_1b() {  # policy load threads round
  local j=$RES/1b-$1-$2-t$3-r$4.json
  # shellcheck disable=SC2046
  env $(policy_env "$1") "$LOWBIT" bench --model "$W4" -p 128 -n 32 -r 2 -t "$3" --no-probe \
    --fp-weights bf16 --json "$j" >/dev/null
  python3 - "$j" "$1" "$2" "$3" "$4" >>"$RES/runs.jsonl" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
print(json.dumps({"workload": "1b", "policy": sys.argv[2], "load": sys.argv[3],
                  "threads": int(sys.argv[4]), "round": int(sys.argv[5]),
                  "pp_tps": j["pp128_tps"], "tg_tps": j["tg32_tps"]}))
EOF
}

for load in idle busy; do
  [[ $load == busy ]] && hog_start
  for policy in adaptive fixed-spin fixed-shortspin fixed-passive; do
    for r in $(seq 1 "$ROUNDS"); do
      for t in 1 2; do
        echo "== $load $policy tiny -t $t (round $r)"
        run_tiny "$policy" "$load" "$t" "$r"
      done
    done
    for r in $(seq 1 "$ROUNDS"); do
      for t in 1 2; do
        echo "== $load $policy 1B W4 -t $t (round $r)"
        run_1b "$policy" "$load" "$t" "$r"
      done
    done
  done
  hog_stop
done

CPU=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)
python3 scripts/contention_report.py "$RES/runs.jsonl" "$OUT" "$CPU" "$(nproc)" \
  "$(date -u '+%Y-%m-%d %H:%M UTC')" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  "$ROUNDS"
