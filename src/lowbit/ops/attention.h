// Causal grouped-query attention over a KV cache.
#pragma once

namespace lowbit::ops {

// q:   [n, n_heads * head_dim], already rotated; query t sits at position pos0 + t.
// k,v: this layer's cache, [max_ctx, n_kv_heads * head_dim], filled for positions 0..pos0+n-1.
// out: [n, n_heads * head_dim]. Query head h reads kv head h / (n_heads / n_kv_heads).
void attention(const float* q, const float* k, const float* v, float* out, int n, int pos0,
               int n_heads, int n_kv_heads, int head_dim);

}  // namespace lowbit::ops
