#!/usr/bin/env bash
# The main job on the shared sample model: greedy generation and perplexity of the FP model, then
# GPTQ 4-bit quantization, and the quantized model's KL divergence / perplexity and generation.
set -euo pipefail
LOWBIT=${1:-build/lowbit}
SHARED=${2:-../shared}
M=$SHARED/models/stories260K
Q=${TMPDIR:-/tmp}/lowbit-demo-stories260K-gptq-w4g32
echo "== lowbit generate --model $M --prompt '' -n 40 --temp 0"
$LOWBIT generate --model "$M" --prompt "" -n 40 --temp 0
echo
echo "== lowbit eval ppl --model ${M}-hf --text tinystories --ctx 256"
$LOWBIT eval ppl --model "${M}-hf" --text tinystories --ctx 256
echo
echo "== lowbit quantize --model ${M}-hf --out $Q --algo gptq --bits 4 --group-size 32 --format lowbit --calib tinystories --force"
$LOWBIT quantize --model "${M}-hf" --out "$Q" --algo gptq --bits 4 --group-size 32 --format lowbit \
  --calib tinystories --force | tail -n 4
echo
echo "== lowbit eval kld --model $Q --base ${M}-hf --text tinystories --ctx 256"
$LOWBIT eval kld --model "$Q" --base "${M}-hf" --text tinystories --ctx 256
echo
echo "== lowbit generate --model $Q --prompt '' -n 40 --temp 0"
$LOWBIT generate --model "$Q" --prompt "" -n 40 --temp 0
echo
