#!/usr/bin/env bash
# Installs everything lowbit needs on a fresh Debian 12 machine: Debian build dependencies and the
# tokenizer oracles used by the tests (npm tokenizers; Debian's python3-sentencepiece). Idempotent:
# skips what is already there.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

DEBS=(build-essential cmake pkg-config clang libclang-rt-14-dev libomp-14-dev
      libopenblas-dev libopenblas-openmp-dev liblapacke-dev nlohmann-json3-dev libcli11-dev libfmt-dev libpcre2-dev
      libgtest-dev libgmock-dev libbenchmark-dev libsentencepiece-dev libonnx-dev libprotobuf-dev
      python3 time   # python3, time: the scripts that regenerate docs/ tables
      python3-sentencepiece)  # the SentencePiece oracle of tests/sentencepiece_test.cpp
# Node.js + npm only when the machine has none (the image may ship its own).
command -v npm >/dev/null 2>&1 || DEBS+=(nodejs npm)
missing=()
for p in "${DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi

if [ ! -d "$here/tools/oracle/node_modules/tokenizers" ]; then
  echo "setup: installing the tokenizer oracle (npm tokenizers)" >&2
  (cd "$here/tools/oracle" && npm ci --ignore-scripts --no-audit --no-fund >/dev/null)
fi
# ONNX Runtime (CPU binary inside the npm package) checks the ONNX models lowbit writes. The
# install script only downloads GPU providers: skipped (--ignore-scripts, and its own switch).
if [ ! -d "$here/tools/ort/node_modules/onnxruntime-node" ]; then
  echo "setup: installing ONNX Runtime (npm onnxruntime-node, CPU)" >&2
  (cd "$here/tools/ort" && ONNXRUNTIME_NODE_INSTALL=skip npm ci --ignore-scripts --no-audit --no-fund >/dev/null)
fi
