// Synthetic checkpoints: Hugging Face folders with the real hyper-parameters of well-known models
// and random weights whose statistics resemble a trained model's (heavy-tailed entries, a few
// outlier input channels per layer, norm weights near 1). Used to test and benchmark at real
// sizes without the real weights. Deterministic for a given seed; streamed to disk, so a 7B
// checkpoint needs little RAM.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lowbit/io/dtype.h"
#include "lowbit/model/config.h"

namespace lowbit {

// Names accepted by synth_shape: "tinyllama-1.1b", "llama-2-7b", "llama-3-8b", "llama-3.2-1b",
// "qwen2-0.5b", "mistral-7b", "small" (Llama-family hyper-parameters), and "gpt-j-6b", "opt-6.7b",
// "falcon-7b", "bloom-7b1", "gpt-neox-20b" (their published config.json, read by the family's own
// entry of the architecture table and written out as it is).
std::vector<std::string> synth_shape_names();
// Throws Error("synth: unknown shape ...").
ModelConfig synth_shape(const std::string& name);

struct SynthOptions {
  std::string shape = "small";
  DType dtype = DType::BF16;  // F32, F16 or BF16
  std::string out_dir;
  uint64_t seed = 0;
  int layers = 0;         // > 0 overrides the shape's layer count
  std::string tokenizer;  // file or folder to copy into the output ("" = none)
  bool force = false;     // replace an existing out_dir
  size_t max_shard_bytes = size_t{5} << 30;
};

struct SynthResult {
  ModelConfig cfg;
  int64_t params = 0;
  int64_t bytes = 0;  // safetensors bytes written
  std::vector<std::string> files;
  double seconds = 0;
};

// Writes the folder through `<out_dir>.tmp.<pid>` + rename: a failure leaves no partial folder.
SynthResult synth_checkpoint(const SynthOptions& opt);

// Statistical model of the weights (exposed for tests).
// Standard Student-t (4 degrees of freedom) scaled to unit variance, clamped at +-16, from a
// uniform in (0, 1).
float synth_heavy_tail(double u);

}  // namespace lowbit
