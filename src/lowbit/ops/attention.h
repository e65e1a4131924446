// Causal grouped-query attention over a KV cache stored as fp32, fp16 or bf16.
#pragma once

#include <cstddef>

namespace lowbit::ops {

// Element type of a KV cache: fp32, or 16-bit fp16/bf16 (half the memory and bandwidth).
enum class KvKind { kF32, kF16, kBF16 };

// Bytes per cache element.
inline size_t kv_elem_size(KvKind kind) { return kind == KvKind::kF32 ? 4 : 2; }

// Writes n floats into a cache of `kind` (fp16/bf16 rounded to nearest even).
void kv_store(const float* src, void* dst, KvKind kind, size_t n);

// q:   [n, n_heads * head_dim], already rotated; query t sits at position pos0 + t.
// k,v: this layer's cache of `kind`, [max_ctx, n_kv_heads * head_dim], filled for positions
//      0..pos0+n-1.
// out: [n, n_heads * head_dim]. Query head h reads kv head h / (n_heads / n_kv_heads).
// Decode (n < 16) reads half rows converting on the fly; prefill converts the visible rows to
// fp32 once and runs BLAS GEMMs.
void attention(const float* q, const void* k, const void* v, KvKind kind, float* out, int n,
               int pos0, int n_heads, int n_kv_heads, int head_dim);

// The fp32 cache.
void attention(const float* q, const float* k, const float* v, float* out, int n, int pos0,
               int n_heads, int n_kv_heads, int head_dim);

}  // namespace lowbit::ops
