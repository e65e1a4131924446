#!/usr/bin/env bash
# lowbit's GGUF files against llama.cpp's own quantizer on the same model and the same text
# (docs/INTEROP.md, "GGUF quality"). Everything is measured by llama.cpp's tools, so both sides
# are judged by the same engine:
#   1. the FP model exported as f32 GGUF (the reference), and llama.cpp's importance matrix
#      (`llama-imatrix`) on the calibration text;
#   2. llama.cpp: `llama-quantize --imatrix` to Q4_K_M, Q4_0 (and without the imatrix);
#   3. lowbit: `lowbit quantize --algo gptq --weight-type q4_k` (GPTQ with q4_k's own block fitter
#      as its rounding step) with the SAME per-tensor types as llama.cpp's Q4_K_M file (its q6_k
#      attn_v / ffn_down layers, q4_k token_embd, q6_k output — read from that file), calibrated on
#      the same text, exported with `lowbit export gguf`; likewise GPTQ → q4_0; and RTN (no
#      calibration) → q4_k as the control;
#   4. `llama-perplexity --kl-divergence` of every file against the f32 reference on the
#      evaluation text: mean KLD, PPL, same-top-token rate.
#
#   bash scripts/gguf_quality.sh [BUILD_DIR=build] [SHARED=../shared]
# Environment: MODEL (shared llama-256: widths multiple of 256), CTX (256), CHUNKS (40),
# CALIB_CHUNKS (64), WORK (/tmp/lowbit-gguf-quality), OUT (docs/INTEROP.md; "-" = print only).
# About 10 minutes on 2 cores.
set -euo pipefail
BUILD=${1:-build}
SHARED=${2:-../shared}
cd "$(dirname "$0")/.."
LOWBIT=$(realpath "$BUILD/lowbit")
SHARED=$(realpath "$SHARED")
PEERS=$SHARED/peers/llama.cpp-b4748/bin
MODEL=${MODEL:-$SHARED/models/llama-256}
CTX=${CTX:-256}
CHUNKS=${CHUNKS:-40}
CALIB_CHUNKS=${CALIB_CHUNKS:-64}
WORK=${WORK:-/tmp/lowbit-gguf-quality}
OUT=${OUT:-docs/INTEROP.md}
CALIB=$SHARED/data/tinystories/tinystories-v1-valid-calib.txt
TEXT=$SHARED/data/tinystories/tinystories-v1-valid-first500.txt
[[ -x $LOWBIT ]] || { echo "gguf_quality: $LOWBIT not found; build first" >&2; exit 1; }
[[ -x $PEERS/llama-quantize ]] || { echo "gguf_quality: $PEERS not found" >&2; exit 1; }
# The peers were built for AVX-512 (peers/README.md): elsewhere each tool dies of SIGILL.
for f in avx512f avx512bw avx512vl avx512_vnni avx512_bf16; do
  grep -qw "$f" /proc/cpuinfo || { echo "gguf_quality: llama.cpp peers need $f, which this CPU lacks" >&2; exit 1; }
done
rm -rf "$WORK"
mkdir -p "$WORK"
W=$WORK
q() { "$@" >"$W/last.log" 2>&1 || { cat "$W/last.log" >&2; exit 1; }; }

echo "== reference and importance matrix" >&2
q "$LOWBIT" export gguf --model "$MODEL" --out "$W/f32.gguf" --type f32
q "$PEERS/llama-imatrix" -m "$W/f32.gguf" -f "$CALIB" -o "$W/imatrix.dat" -c "$CTX" \
  --chunks "$CALIB_CHUNKS" -t 2
q "$PEERS/llama-perplexity" -m "$W/f32.gguf" -f "$TEXT" -c "$CTX" --chunks "$CHUNKS" -t 2 \
  --kl-divergence-base "$W/base.kld"

echo "== llama.cpp's quantizer" >&2
for t in Q4_K_M Q4_0; do
  q "$PEERS/llama-quantize" --imatrix "$W/imatrix.dat" "$W/f32.gguf" "$W/llamacpp-$t-imatrix.gguf" "$t" 2
  q "$PEERS/llama-quantize" "$W/f32.gguf" "$W/llamacpp-$t.gguf" "$t" 2
done

# The per-tensor types of llama.cpp's Q4_K_M file, as lowbit rules: q6_k layers, head, embeddings.
python3 - "$W/llamacpp-Q4_K_M-imatrix.gguf" >"$W/q4km-types.txt" <<'EOF'
import struct, sys
names = {0: "f32", 1: "f16", 2: "q4_0", 3: "q4_1", 8: "q8_0", 12: "q4_k", 13: "q5_k", 14: "q6_k"}
b = open(sys.argv[1], "rb").read()
at = 4 + 4
n_t, n_kv = struct.unpack_from("<QQ", b, at); at += 16
def s():
    global at
    n, = struct.unpack_from("<Q", b, at); at += 8
    v = b[at:at + n].decode(); at += n; return v
sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
def skip(t):
    global at
    if t == 8: s()
    elif t == 9:
        et, n = struct.unpack_from("<IQ", b, at); at += 12
        for _ in range(n): skip(et)
    else: at += sizes[t]
for _ in range(n_kv):
    s(); t, = struct.unpack_from("<I", b, at); at += 4; skip(t)
for _ in range(n_t):
    name = s(); nd, = struct.unpack_from("<I", b, at); at += 4 + 8 * nd
    t, = struct.unpack_from("<I", b, at); at += 4 + 8
    print(name, names.get(t, str(t)))
EOF
rules=()
while read -r name type; do
  [[ $name == blk.* ]] || continue
  [[ $type == q6_k ]] || continue
  layer=$(cut -d. -f2 <<<"$name")
  case $name in
    *attn_v.weight) rules+=(--override "model.layers.$layer.self_attn.v_proj:weight_type=q6_k") ;;
    *ffn_down.weight) rules+=(--override "model.layers.$layer.mlp.down_proj:weight_type=q6_k") ;;
  esac
done <"$W/q4km-types.txt"
embd=$(awk '$1 == "token_embd.weight" {print $2}' "$W/q4km-types.txt")
outp=$(awk '$1 == "output.weight" {print $2}' "$W/q4km-types.txt")
echo "llama.cpp Q4_K_M types: ${rules[*]} token_embd $embd output $outp" >&2

echo "== lowbit" >&2
calib=(--calib "$CALIB" --nsamples "$CALIB_CHUNKS" --seqlen "$CTX")
q "$LOWBIT" quantize --model "$MODEL" --out "$W/lowbit-gptq-q4km" --algo gptq \
  --weight-type q4_k "${rules[@]}" --override "lm_head:weight_type=$outp" "${calib[@]}"
q "$LOWBIT" export gguf --model "$W/lowbit-gptq-q4km" --out "$W/lowbit-gptq-Q4_K_M.gguf" \
  --token-embedding-type "$embd" --output-tensor-type "$outp"
q "$LOWBIT" quantize --model "$MODEL" --out "$W/lowbit-rtn-q4km" --algo rtn \
  --weight-type q4_k "${rules[@]}" --override "lm_head:weight_type=$outp"
q "$LOWBIT" export gguf --model "$W/lowbit-rtn-q4km" --out "$W/lowbit-rtn-Q4_K_M.gguf" \
  --token-embedding-type "$embd" --output-tensor-type "$outp"
q "$LOWBIT" quantize --model "$MODEL" --out "$W/lowbit-gptq-q4_0" --algo gptq \
  --weight-type q4_0 --override "lm_head:weight_type=q6_k" "${calib[@]}"
q "$LOWBIT" export gguf --model "$W/lowbit-gptq-q4_0" --out "$W/lowbit-gptq-Q4_0.gguf" \
  --token-embedding-type q4_0 --output-tensor-type q6_k

echo "== KL divergence against f32 (llama-perplexity)" >&2
rows=()
for f in llamacpp-Q4_K_M llamacpp-Q4_K_M-imatrix lowbit-rtn-Q4_K_M lowbit-gptq-Q4_K_M \
  llamacpp-Q4_0 llamacpp-Q4_0-imatrix lowbit-gptq-Q4_0; do
  "$PEERS/llama-perplexity" -m "$W/$f.gguf" -f "$TEXT" -c "$CTX" --chunks "$CHUNKS" -t 2 \
    --kl-divergence-base "$W/base.kld" --kl-divergence >"$W/$f.kld.log" 2>&1
  size=$(stat -c %s "$W/$f.gguf")
  rows+=("$f $size $(python3 - "$W/$f.kld.log" <<'EOF'
import re, sys
t = open(sys.argv[1]).read()
def g(rx):
    m = re.search(rx, t)
    return m.group(1) if m else "nan"
print(g(r"Mean PPL\(Q\)\s*:\s*([0-9.]+)"), g(r"Mean\s+KLD:\s*([0-9.]+)"), g(r"Same top p:\s*([0-9.]+)"))
EOF
)")
  echo "  ${rows[-1]}" >&2
done

python3 - "$OUT" "$CTX" "$CHUNKS" "$CALIB_CHUNKS" "$(basename "$MODEL")" "${rows[@]}" <<'EOF'
import os, sys
sys.path.insert(0, os.path.join(os.getcwd(), "scripts"))
from doc_section import write_section, markers
out, ctx, chunks, calib, model = sys.argv[1:6]
what = {
    "llamacpp-Q4_K_M": "llama.cpp Q4_K_M, no imatrix",
    "llamacpp-Q4_K_M-imatrix": "llama.cpp Q4_K_M + imatrix",
    "lowbit-rtn-Q4_K_M": "lowbit RTN → Q4_K_M types (no calibration)",
    "lowbit-gptq-Q4_K_M": "**lowbit GPTQ → Q4_K_M types**",
    "llamacpp-Q4_0": "llama.cpp Q4_0, no imatrix",
    "llamacpp-Q4_0-imatrix": "llama.cpp Q4_0 + imatrix",
    "lowbit-gptq-Q4_0": "**lowbit GPTQ → q4_0** (output q6_k as llama.cpp's)",
}
begin, end = markers("gguf-quality")
lines = [begin, "",
         f"`bash scripts/gguf_quality.sh` — {model}, KLD against the f32 GGUF measured by "
         f"`llama-perplexity --kl-divergence` (-c {ctx}, {chunks} chunks of the TinyStories "
         f"evaluation text); imatrix and GPTQ calibrated on the TinyStories calibration text "
         f"({calib} windows of {ctx}).", "",
         "| file | bytes | PPL | mean KLD | same top token % |", "|---|---:|---:|---:|---:|"]
for row in sys.argv[6:]:
    name, size, ppl, kld, top = row.split()
    lines.append(f"| {what.get(name, name)} | {int(size):,} | {ppl} | {kld} | {top} |")
lines += ["", end]
write_section(out, "gguf-quality", "\n".join(lines))
EOF
