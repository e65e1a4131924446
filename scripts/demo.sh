#!/usr/bin/env bash
# The main job on the shared sample model: greedy generation and perplexity.
set -euo pipefail
LOWBIT=${1:-build/lowbit}
SHARED=${2:-../shared}
M=$SHARED/models/stories260K
echo "== lowbit generate --model $M --prompt '' -n 40 --temp 0"
$LOWBIT generate --model "$M" --prompt "" -n 40 --temp 0
echo
echo "== lowbit eval ppl --model ${M}-hf --text tinystories --ctx 256"
$LOWBIT eval ppl --model "${M}-hf" --text tinystories --ctx 256
