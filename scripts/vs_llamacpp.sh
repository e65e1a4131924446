#!/usr/bin/env bash
# lowbit and llama.cpp side by side on the SAME weights (docs/PERFORMANCE.md, "Side by side with
# llama.cpp"): a synthetic checkpoint (`lowbit synth`, bf16) is quantized by lowbit (RTN: W4 g32
# sym, W4 g128 sym, W8 per-channel sym; lm_head int8 per-channel) and exported by lowbit as a bf16
# GGUF (`lowbit export gguf`), from which llama.cpp's own `llama-quantize` makes Q4_0 and Q8_0.
# Then, for R rounds, each pair runs alternately — lowbit `bench`, then `llama-bench` — with
# 2 threads: pp<P>, tg<N> from an empty context, and tg<N> after a P-token prompt (llama-bench
# -pg P,N: its decode time is the pg time minus the pp time of the same run). Medians over the
# rounds and the ratios lowbit / llama.cpp go into the table (scripts/vs_llamacpp_report.py).
#
#   bash scripts/vs_llamacpp.sh [BUILD_DIR=build] [SHARED=../shared]
# Environment: SHAPE (tinyllama-1.1b; llama-2-7b uses P=128 N=32), ROUNDS (5), P (512; another
# prompt length, e.g. P=2048 for decode at a long context, gets its own section), N (128),
# THREADS (2), WORK (/tmp/lowbit-perf: checkpoints kept between runs), PAIRS (default
# "w4g32:q4_0 w4g128:q4_0 w8:q8_0 bf16:bf16"), OUT (docs/PERFORMANCE.md; "-" = print only),
# LAYERS (override the layer count of the synthetic shape: quick runs).
# Slow: about 25 minutes for the 1.1B shape on 2 cores. Run on an idle machine, not in CI.
set -euo pipefail
BUILD=${1:-build}
SHARED=${2:-../shared}
SHAPE=${SHAPE:-tinyllama-1.1b}
ROUNDS=${ROUNDS:-5}
THREADS=${THREADS:-2}
WORK=${WORK:-/tmp/lowbit-perf}
OUT=${OUT:-docs/PERFORMANCE.md}
PAIRS=${PAIRS:-"w4g32:q4_0 w4g128:q4_0 w8:q8_0 bf16:bf16"}
if [[ $SHAPE == llama-2-7b ]]; then P=${P:-128}; N=${N:-32}; else P=${P:-512}; N=${N:-128}; fi

cd "$(dirname "$0")/.."
LOWBIT=$(realpath "$BUILD/lowbit")
SHARED=$(realpath "$SHARED")
PEERS=$SHARED/peers/llama.cpp-b4748/bin
[[ -x $LOWBIT ]] || { echo "vs_llamacpp: $LOWBIT not found; build first (make build)" >&2; exit 1; }
[[ -x $PEERS/llama-bench ]] || { echo "vs_llamacpp: $PEERS/llama-bench not found" >&2; exit 1; }
# The peers were built for AVX-512 (peers/README.md): elsewhere each tool dies of SIGILL.
for f in avx512f avx512bw avx512vl avx512_vnni avx512_bf16; do
  grep -qw "$f" /proc/cpuinfo || { echo "vs_llamacpp: llama.cpp peers need $f, which this CPU lacks" >&2; exit 1; }
done
mkdir -p "$WORK"
NAME=$SHAPE${LAYERS:+-l$LAYERS}
BASE=$WORK/$NAME
# The table's section: one per shape, and per prompt length when it is not the default.
SECTION=$NAME
DEFAULT_P=512
[[ $SHAPE == llama-2-7b ]] && DEFAULT_P=128
[[ $P != "$DEFAULT_P" ]] && SECTION=$NAME-p$P
RES=$WORK/vs-$SECTION
rm -rf "$RES"
mkdir -p "$RES"

# --- the same weights for both -------------------------------------------------------------
if [[ ! -f $BASE/config.json ]]; then
  echo "== synth $SHAPE" >&2
  "$LOWBIT" synth --shape "$SHAPE" --dtype bf16 --out "$BASE" ${LAYERS:+--layers "$LAYERS"} \
    --tokenizer "$SHARED/tokenizers/llama-2" >/dev/null
fi
declare -A QARGS=([w4g32]="--bits 4 --group-size 32 --sym" [w4g128]="--bits 4 --group-size 128 --sym"
                  [w8]="--bits 8 --group-size -1 --sym")
for pair in $PAIRS; do
  ours=${pair%%:*}
  theirs=${pair#*:}
  if [[ $ours != bf16 && ! -f $BASE-$ours-sym/config.json ]]; then
    echo "== lowbit quantize $ours (RTN)" >&2
    # shellcheck disable=SC2086
    "$LOWBIT" quantize --model "$BASE" --out "$BASE-$ours-sym" --algo rtn ${QARGS[$ours]} \
      --override 'lm_head:bits=8,group_size=-1,sym=true' >/dev/null
  fi
  if [[ ! -f $BASE-bf16.gguf ]]; then
    echo "== lowbit export gguf --type bf16" >&2
    "$LOWBIT" export gguf --model "$BASE" --out "$BASE-bf16.gguf" --type bf16 >/dev/null
  fi
  if [[ $theirs != bf16 && ! -f $BASE-$theirs.gguf ]]; then
    echo "== llama-quantize $theirs" >&2
    "$PEERS/llama-quantize" "$BASE-bf16.gguf" "$BASE-$theirs.gguf.tmp" "${theirs^^}" "$THREADS" \
      >"$RES/quantize-$theirs.log" 2>&1
    mv "$BASE-$theirs.gguf.tmp" "$BASE-$theirs.gguf"
  fi
done

# --- alternating rounds --------------------------------------------------------------------
for r in $(seq 1 "$ROUNDS"); do
  for pair in $PAIRS; do
    ours=${pair%%:*}
    theirs=${pair#*:}
    model=$BASE-$ours-sym
    [[ $ours == bf16 ]] && model=$BASE
    echo "== round $r/$ROUNDS: $ours vs $theirs" >&2
    # lowbit: pp P + tg N after it, then tg N from an empty context (one repetition each after
    # its warm-up; the rounds are the repetitions).
    "$LOWBIT" bench --model "$model" -p "$P" -n "$N" -t "$THREADS" -r 1 --no-probe \
      --fp-weights bf16 --kv-cache f16 --json "$RES/lowbit-$ours-pg-$r.json" >/dev/null
    "$LOWBIT" bench --model "$model" -p 0 -n "$N" -t "$THREADS" -r 1 --no-probe \
      --fp-weights bf16 --kv-cache f16 --json "$RES/lowbit-$ours-tg-$r.json" >/dev/null
    "$PEERS/llama-bench" -m "$BASE-$theirs.gguf" -p "$P" -n "$N" -pg "$P,$N" -t "$THREADS" -r 1 \
      -o json >"$RES/llamacpp-$theirs-$r.json" 2>/dev/null
  done
done
# The decode bound: bandwidth probe and the bytes each kernel streams per token.
"$LOWBIT" bench --model "$BASE-w4g32-sym" -p 0 -n 1 -t "$THREADS" -r 1 --fp-weights bf16 \
  --json "$RES/probe.json" >/dev/null 2>&1 || true
for pair in $PAIRS; do
  ours=${pair%%:*}
  model=$BASE-$ours-sym
  [[ $ours == bf16 ]] && model=$BASE
  "$LOWBIT" bench --model "$model" -p 0 -n 1 -t "$THREADS" -r 1 --no-probe --fp-weights bf16 \
    --kv-cache f16 --json "$RES/bytes-$ours.json" >/dev/null
done
python3 scripts/vs_llamacpp_report.py "$RES" "$OUT" "$SECTION" "$P" "$N" "$THREADS" "$ROUNDS" \
  "$PAIRS" "$(date -u '+%Y-%m-%d %H:%M UTC')" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  "$(cut -d' ' -f1-3 /proc/loadavg)"
