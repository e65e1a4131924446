#!/usr/bin/env bash
# Writes docs/PERFORMANCE.md: `lowbit bench` (llama-bench style pp/tg tokens/s) of the runtime on
# synthetic TinyLlama-1.1B and Llama-2-7B shapes in FP32 / BF16 and quantized W4 g32, W4 g128 and
# W8 per-channel (RTN of the same synthetic checkpoint), threads 2 and 1, against the machine's
# measured memory bandwidth and the issue's llama.cpp reference figures; the per-shape kernel
# table (`lowbit bench --kernels`); and the perplexity of quantized shared models on the kernels
# against the dequantize reference path.
# Slow (about 30-40 minutes on 2 cores, 30 GB of disk for the 7B checkpoints); run by hand on an
# idle machine, not in CI:
#   bash scripts/perf_report.sh [BUILD_DIR=build] [SHARED=../shared]
# Environment: WORK (default /tmp/lowbit-perf) keeps the synthetic and quantized checkpoints
# between runs (reused when present); REPS (default 3); OUT (default docs/PERFORMANCE.md);
# SKIP_7B=1 leaves out the Llama-2-7B shape.
set -euo pipefail
BUILD=${1:-build}
SHARED=${2:-../shared}
REPS=${REPS:-3}
WORK=${WORK:-/tmp/lowbit-perf}
OUT=${OUT:-docs/PERFORMANCE.md}
SKIP_7B=${SKIP_7B:-0}
# OpenMP threads spin briefly between parallel regions (the default): decode runs ~5 regions per
# layer, and waking sleeping threads (OMP_WAIT_POLICY=passive) costs ~20 µs each on this VM.

cd "$(dirname "$0")/.."
LOWBIT=$(realpath "$BUILD/lowbit")
SHARED=$(realpath "$SHARED")
[[ -x $LOWBIT ]] || { echo "perf_report: $LOWBIT not found; build first (make build)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "perf_report: python3 is needed" >&2; exit 1; }
mkdir -p "$WORK"
RES=$WORK/results
rm -rf "$RES"
mkdir -p "$RES"

# Checkpoints: synthetic bf16, then RTN W4 g32 / W4 g128 / W8 per-channel of it. Like llama.cpp's
# Q4_0 / Q8_0 files (whose output layer is Q6_K / Q8_0), the lm_head is quantized too: int8
# per-channel symmetric.
prepare() {  # shape
  local shape=$1 base=$WORK/$1
  if [[ ! -f $base/config.json ]]; then
    echo "== synth $shape"
    "$LOWBIT" synth --shape "$shape" --dtype bf16 --out "$base" --tokenizer "$SHARED/tokenizers/llama-2"
  fi
  local spec name args
  for spec in "w4g32:--bits 4 --group-size 32" "w4g128:--bits 4 --group-size 128" \
              "w8:--bits 8 --group-size -1 --sym"; do
    name=${spec%%:*}
    args=${spec#*:}
    if [[ ! -f $base-$name/config.json ]]; then
      echo "== quantize $shape $name (RTN)"
      # shellcheck disable=SC2086
      "$LOWBIT" quantize --model "$base" --out "$base-$name" --algo rtn $args \
        --override 'lm_head:bits=8,group_size=-1,sym=true' >/dev/null
    fi
  done
}

i=0
bench() {  # label shape model threads p n reps unused extra...
  local label=$1 shape=$2 model=$3 t=$4 p=$5 n=$6 reps=$7 probe=$8
  shift 8
  # Every run measures the bandwidth just before it: it drifts by tens of % on a shared VM.
  local probe_args=(--probe-mb 1024)
  echo "== [$shape $label] lowbit bench -p $p -n $n -t $t -r $reps $*"
  "$LOWBIT" bench --model "$model" -p "$p" -n "$n" -t "$t" -r "$reps" "${probe_args[@]}" \
    --json "$RES/run$i.json" "$@" >/dev/null
  printf '%s|%s' "$shape" "$label" >"$RES/run$i.name"
  i=$((i + 1))
}

prepare tinyllama-1.1b
TL=$WORK/tinyllama-1.1b
for t in 2 1; do
  bench FP32 tinyllama-1.1b "$TL" $t 512 128 "$REPS" 1
  bench BF16 tinyllama-1.1b "$TL" $t 512 128 "$REPS" 0 --fp-weights bf16
  for q in w4g32 w4g128 w8; do
    bench "$q" tinyllama-1.1b "$TL-$q" $t 512 128 "$REPS" 0 --fp-weights bf16
  done
  # The same W4 g32 model with fp32 activations (dequantize in registers / BLAS for prefill).
  bench "w4g32 act-f32" tinyllama-1.1b "$TL-w4g32" $t 512 128 "$REPS" 0 --fp-weights bf16 --act f32
done
# Like-for-like with the llama.cpp reference figures (pp128 / tg32).
bench "w4g32" tinyllama-1.1b-pp128 "$TL-w4g32" 2 128 32 "$REPS" 0 --fp-weights bf16

echo "== kernels (TinyLlama shapes, 2 threads)"
for q in w4g32 w4g128 w8; do
  "$LOWBIT" bench --kernels --model "$TL-$q" -p 512 -t 2 --fp-weights bf16 --json "$RES/kern-$q.json" >/dev/null
done
"$LOWBIT" bench --kernels --model "$TL" -p 512 -t 2 --fp-weights bf16 --json "$RES/kern-bf16.json" >/dev/null

if [[ $SKIP_7B != 1 ]]; then
  prepare llama-2-7b
  L7=$WORK/llama-2-7b
  # fp32 7B needs 27 GB: more than this machine's RAM; BF16 is the unquantized row.
  bench BF16 llama-2-7b "$L7" 2 128 32 2 1 --fp-weights bf16
  for q in w4g32 w4g128 w8; do
    bench "$q" llama-2-7b "$L7-$q" 2 128 32 2 0 --fp-weights bf16
  done
fi

echo "== perplexity: kernels vs the dequantize reference (shared models)"
for spec in "stories260K-hf:gptq:32" "babyllama-105-hf:gptq:128"; do
  IFS=: read -r m algo g <<<"$spec"
  q=$WORK/$m-$algo-g$g
  if [[ ! -f $q/config.json ]]; then
    "$LOWBIT" quantize --model "$SHARED/models/$m" --out "$q" --algo "$algo" --bits 4 \
      --group-size "$g" --calib tinystories >/dev/null
  fi
  for mode in reference f32 int8; do
    args=(--act "$mode")
    [[ $mode == reference ]] && args=(--dequantize)
    "$LOWBIT" eval ppl --model "$q" --text tinystories --limit 100 "${args[@]}" \
      --json "$RES/ppl-$m-$mode.json" >/dev/null
  done
done

CPU=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)
python3 scripts/perf_report.py "$RES" "$OUT" "$CPU" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" \
  "$(date -u '+%Y-%m-%d %H:%M UTC')" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$REPS"
