// Rotary position embedding, Hugging Face "rotate-half" layout: within each head, element i pairs
// with element i + head_dim/2 and both rotate by angle pos · inv_freq[i].
#pragma once

#include <vector>

#include "lowbit/model/config.h"

namespace lowbit::ops {

// inv_freq[i] = theta^(-2i/head_dim), with llama3 frequency scaling applied when configured.
std::vector<float> rope_inv_freq(const ModelConfig& cfg);

// Rotates `n_heads` heads of `x` (one token, [n_heads, head_dim]) for position `pos`.
void rope(float* x, int n_heads, int head_dim, int pos, const float* inv_freq);

}  // namespace lowbit::ops
