// Causal grouped-query attention over a KV cache stored as fp32, fp16 or bf16, optionally with
// ALiBi position biases.
#pragma once

#include <cstddef>
#include <vector>

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
// alibi_slopes: nullptr, or n_heads slopes: query t then adds slopes[h] · (j − (pos0 + t)) to its
// scaled score q·k_j/sqrt(head_dim) for key j before the softmax. That is Bloom's slope · j up to a
// per-row constant, which the softmax ignores, and keeps the biases small. (A caller whose model
// adds the bias before the 1/sqrt(head_dim) scaling would pass slopes / sqrt(head_dim).)
void attention(const float* q, const void* k, const void* v, KvKind kind, float* out, int n,
               int pos0, int n_heads, int n_kv_heads, int head_dim,
               const float* alibi_slopes = nullptr);

// The fp32 cache.
void attention(const float* q, const float* k, const float* v, float* out, int n, int pos0,
               int n_heads, int n_kv_heads, int head_dim, const float* alibi_slopes = nullptr);

// ALiBi slopes of `n_heads` heads as transformers' build_alibi_tensor makes them (Bloom,
// Baichuan-13B): for the largest power of two p ≤ n_heads, slope h = b^(h+1) with b = 2^(-8/p);
// the remaining n_heads − p heads take the odd powers b'^1, b'^3, ... of the next power of two's
// base b' = 2^(-4/p). Each in fp32 as torch computes it. n_heads ≥ 1.
std::vector<float> alibi_slopes(int n_heads);

namespace ref {
// Scalar reference of attention (no BLAS, no vector code, std::exp softmax) for any n.
void attention(const float* q, const void* k, const void* v, KvKind kind, float* out, int n,
               int pos0, int n_heads, int n_kv_heads, int head_dim,
               const float* alibi_slopes = nullptr);
}  // namespace ref

}  // namespace lowbit::ops
