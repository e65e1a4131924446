// The largest inputs lowbit reads, in one place (docs/RELIABILITY.md lists them). Each is far above
// what real checkpoints hold and low enough that a hostile file cannot exhaust memory: beyond a
// limit, loading stops with a one-line error before the file is read.
#pragma once

#include <cstdint>

namespace lowbit {

constexpr uint64_t kMiB = uint64_t{1} << 20;

// config.json, quantize_config.json, generation_config.json (real ones: a few KB).
constexpr uint64_t kMaxConfigBytes = 16 * kMiB;
// tokenizer.json (real ones: up to ~35 MB for 256k-token vocabularies).
constexpr uint64_t kMaxTokenizerJsonBytes = 256 * kMiB;
// tokenizer_config.json, special_tokens_map.json (chat templates included: ~100 KB).
constexpr uint64_t kMaxTokenizerConfigBytes = 16 * kMiB;
// model.safetensors.index.json (a 405B model: ~100 KB).
constexpr uint64_t kMaxIndexBytes = 64 * kMiB;
// A recipe file.
constexpr uint64_t kMaxRecipeBytes = 16 * kMiB;
// A safetensors header, as the reference implementation bounds it.
constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;
// An evaluation, calibration, prompt or LAMBADA text (WikiText-2 test: 1.3 MB).
constexpr uint64_t kMaxTextBytes = 1024 * kMiB;

}  // namespace lowbit
