#!/usr/bin/env bash
# Builds every libFuzzer target (fuzz/*_fuzz.cpp) with clang + ASan/UBSan in build-fuzz/ and runs
# each for a bounded time on a copy of its seed corpus (fuzz/corpus/<name without _fuzz>/).
# Fails on any crash, leak, sanitizer report or timeout.
#   FUZZ_SECONDS=60   seconds per target
#   FUZZ_BUILD=build-fuzz
#   FUZZ_JOBS=2       build parallelism
#   FUZZ_TARGETS="safetensors_fuzz ..."   run only these
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET="${FUZZ_SECONDS:-60}"
BUILD="${FUZZ_BUILD:-build-fuzz}"
JOBS="${FUZZ_JOBS:-2}"

shopt -s nullglob
sources=(fuzz/*_fuzz.cpp)
if [ ${#sources[@]} -eq 0 ]; then
  echo "fuzz: no targets in fuzz/"
  exit 0
fi
targets=()
for src in "${sources[@]}"; do targets+=("$(basename "$src" .cpp)"); done
if [ -n "${FUZZ_TARGETS:-}" ]; then read -r -a targets <<<"$FUZZ_TARGETS"; fi

command -v clang++ >/dev/null || { echo "fuzz: clang++ not found" >&2; exit 1; }
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang \
  -DLOWBIT_BUILD_FUZZ=ON -DLOWBIT_BUILD_TESTS=OFF -DLOWBIT_BUILD_BENCH=OFF >/dev/null
cmake --build "$BUILD" -j "$JOBS" --target "${targets[@]}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Seeds cut from ../shared join each run's corpus (they are never committed).
if [ -d "${SHARED:-../shared}" ] && command -v python3 >/dev/null; then
  python3 fuzz/make_seeds.py --shared "${SHARED:-../shared}" --shared-only "$work"
fi
failed=()
for t in "${targets[@]}"; do
  name="${t%_fuzz}"
  corpus="$work/$name"
  mkdir -p "$corpus" "$work/artifacts-$name"
  if [ -d "fuzz/corpus/$name" ]; then cp -r "fuzz/corpus/$name/." "$corpus/"; fi
  echo "fuzz: $t for ${SECONDS_PER_TARGET}s (seeds: $(ls "$corpus" | wc -l))"
  if ! ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
      "$BUILD/$t" "$corpus" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
      -max_len=65536 -print_final_stats=1 -artifact_prefix="$work/artifacts-$name/" \
      > "$work/$t.log" 2>&1; then
    echo "fuzz: $t FAILED; last lines of its log:" >&2
    tail -n 40 "$work/$t.log" >&2
    mkdir -p "$BUILD/crashes"
    cp -r "$work/artifacts-$name/." "$BUILD/crashes/" 2>/dev/null || true
    failed+=("$t")
  else
    grep -E "^stat::number_of_executed_units|^#[0-9]+.*DONE" "$work/$t.log" | tail -n 2 || true
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (reproducers in $BUILD/crashes/)" >&2
  exit 1
fi
echo "fuzz: all ${#targets[@]} target(s) passed"
