// A GGUF file as a lowbit model: its metadata as a ModelConfig (through the family's entry of the
// architecture table, as if it were that family's config.json) and each tensor role read back in
// lowbit's orientation. Used by the GGUF loader (load_gguf.cpp) and by WeightSource.
#pragma once

#include <string>
#include <vector>

#include "lowbit/io/gguf_reader.h"
#include "lowbit/model/arch.h"
#include "lowbit/model/config.h"

namespace lowbit {

// general.architecture ("llama", "qwen2") and the <arch>.* keys -> ModelConfig. Throws
// Error("<path>: ...") for an unsupported architecture, missing or out-of-range metadata, or
// features lowbit cannot run (partial rotary, rope scaling other than rope_freqs).
ModelConfig gguf_model_config(const gguf::Reader& r);

// The tensor of a role, its shape checked against the config. Throws Error("<path>: missing
// tensor <name>" / "... has shape ...").
const gguf::Tensor& gguf_role_tensor(const gguf::Reader& r, const ModelConfig& cfg, TensorRole role,
                                     int layer);

// A role as fp32 in lowbit's order ([out, in]; q/k rows of the "llama" architecture back in
// rotate-half order); NaN/Inf are errors.
std::vector<float> read_gguf_role(const gguf::Reader& r, const ModelConfig& cfg, TensorRole role,
                                  int layer);

}  // namespace lowbit
