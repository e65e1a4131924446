#!/usr/bin/env bash
# Writes the "Other architectures at real shapes" section of docs/PERFORMANCE.md (between
# <!-- archs:begin --> and <!-- archs:end -->; scripts/perf_report.py keeps it):
#  1. `lowbit bench` (pp128, tg32, 2 threads) of synthetic GPT-J-6B and Falcon-7B shapes (their
#     published config.json, LAYERS decoder layers: per-layer shapes are the real ones, tokens/s
#     scale with the layer count), in BF16 and W4 g32 RTN (lm_head int8 per-channel, as
#     perf_report.sh quantizes), ROUNDS rounds with the models alternating, medians;
#  2. with BASE=<an older lowbit binary>: the Llama no-regression check, the synthetic
#     TinyLlama-1.1B shape in BF16 and W4 g32, this build and BASE alternating in each of
#     BASE_ROUNDS rounds, medians of the per-round ratios.
# Run by hand on an idle machine (about 15 minutes, 8 GB of disk):
#   BASE=/path/to/old/lowbit bash scripts/arch_bench.sh [BUILD_DIR=build] [SHARED=../shared]
# Environment: WORK (default /tmp/lowbit-perf), ROUNDS (default 3), BASE_ROUNDS (default 8),
# LAYERS (default 8),
# OUT (default docs/PERFORMANCE.md), BASE_LABEL (how the base build is named in the table).
set -euo pipefail
BUILD=${1:-build}
SHARED=${2:-../shared}
WORK=${WORK:-/tmp/lowbit-perf}
ROUNDS=${ROUNDS:-3}
BASE_ROUNDS=${BASE_ROUNDS:-8}
LAYERS=${LAYERS:-8}
OUT=${OUT:-docs/PERFORMANCE.md}
BASE=${BASE:-}
BASE_LABEL=${BASE_LABEL:-base}

cd "$(dirname "$0")/.."
LOWBIT=$(realpath "$BUILD/lowbit")
SHARED=$(realpath "$SHARED")
[[ -x $LOWBIT ]] || { echo "arch_bench: $LOWBIT not found; build first (make build)" >&2; exit 1; }
[[ -z $BASE || -x $BASE ]] || { echo "arch_bench: BASE=$BASE is not an executable" >&2; exit 1; }
command -v python3 >/dev/null || { echo "arch_bench: python3 is needed" >&2; exit 1; }
mkdir -p "$WORK"
RES=$WORK/archs
rm -rf "$RES"
mkdir -p "$RES"

prepare() {  # shape layers(0 = all) dir
  local shape=$1 layers=$2 base=$3
  local layer_args=()
  [[ $layers -gt 0 ]] && layer_args=(--layers "$layers")
  if [[ ! -f $base/config.json ]]; then
    echo "== synth $shape ${layer_args[*]}"
    "$LOWBIT" synth --shape "$shape" --dtype bf16 "${layer_args[@]}" --out "$base"
  fi
  if [[ ! -f $base-w4g32/config.json ]]; then
    echo "== quantize $shape W4 g32 (RTN)"
    "$LOWBIT" quantize --model "$base" --out "$base-w4g32" --algo rtn --bits 4 --group-size 32 \
      --override 'lm_head:bits=8,group_size=-1,sym=true' >/dev/null
  fi
}

run() {  # binary label shape model round
  local j=$RES/$2-$3-$(basename "$4")-r$5.json
  "$1" bench --model "$4" -p 128 -n 32 -r 2 -t 2 --no-probe --fp-weights bf16 --json "$j" \
    >/dev/null
  python3 - "$j" "$2" "$3" "$(basename "$4")" "$5" >>"$RES/runs.jsonl" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
print(json.dumps({"build": sys.argv[2], "shape": sys.argv[3], "model": sys.argv[4],
                  "round": int(sys.argv[5]), "params": j.get("params", 0),
                  "pp_tps": j["pp128_tps"], "tg_tps": j["tg32_tps"]}))
EOF
}

for shape in gpt-j-6b falcon-7b; do prepare "$shape" "$LAYERS" "$WORK/$shape-l$LAYERS"; done
for r in $(seq 1 "$ROUNDS"); do
  for shape in gpt-j-6b falcon-7b; do
    for m in "$WORK/$shape-l$LAYERS" "$WORK/$shape-l$LAYERS-w4g32"; do
      echo "== round $r: $(basename "$m")"
      run "$LOWBIT" this "$shape" "$m" "$r"
    done
  done
done

if [[ -n $BASE ]]; then
  TL=$WORK/tinyllama-1.1b
  if [[ ! -f $TL/config.json ]]; then
    "$LOWBIT" synth --shape tinyllama-1.1b --dtype bf16 --out "$TL" \
      --tokenizer "$SHARED/tokenizers/llama-2"
  fi
  prepare tinyllama-1.1b 0 "$TL"
  for r in $(seq 1 "$BASE_ROUNDS"); do
    for m in "$TL" "$TL-w4g32"; do
      echo "== round $r: $(basename "$m") this / $BASE_LABEL"
      run "$LOWBIT" this tinyllama-1.1b "$m" "$r"
      run "$BASE" "$BASE_LABEL" tinyllama-1.1b "$m" "$r"
    done
  done
fi

CPU=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)
python3 scripts/arch_report.py "$RES/runs.jsonl" "$OUT" "$CPU" "$(nproc)" \
  "$(date -u '+%Y-%m-%d %H:%M UTC')" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  "$ROUNDS" "$LAYERS" "$BASE_LABEL" "$BASE_ROUNDS"
