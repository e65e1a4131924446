// Rotary position embedding. Within each head only the first `rot_dims` elements rotate (GPT-NeoX
// rotary_pct, GPT-J rotary_dim, Phi partial_rotary_factor); the rest pass through. Pair i
// (i < rot_dims/2) rotates by angle pos · inv_freq[i]:
//   rotate-half (Hugging Face Llama, GPT-NeoX, Phi): elements (i, i + rot_dims/2);
//   interleaved (GPT-J rotate_every_two, ChatGLM):    elements (2i, 2i + 1).
#pragma once

#include <vector>

#include "lowbit/model/config.h"

namespace lowbit::ops {

// inv_freq[i] = theta^(-2i/d), i < d/2, d = cfg.rope_dims (0: cfg.head_dim), in fp32 as Hugging
// Face computes it; llama3 frequency scaling applied when configured.
std::vector<float> rope_inv_freq(const ModelConfig& cfg);

// Rotates `n_heads` heads of `x` (one token, [n_heads, head_dim]) for position `pos`. rot_dims is
// even, 0 < rot_dims ≤ head_dim; inv_freq holds rot_dims/2 frequencies.
void rope(float* x, int n_heads, int head_dim, int rot_dims, bool interleaved, int pos,
          const float* inv_freq);

// The whole head, rotate-half: rope(x, n_heads, head_dim, head_dim, false, pos, inv_freq).
void rope(float* x, int n_heads, int head_dim, int pos, const float* inv_freq);

namespace ref {
// Scalar reference of rope (same fp32 cos/sin, one pair at a time).
void rope(float* x, int n_heads, int head_dim, int rot_dims, bool interleaved, int pos,
          const float* inv_freq);
}  // namespace ref

}  // namespace lowbit::ops
