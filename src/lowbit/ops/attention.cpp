#include "lowbit/ops/attention.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

namespace lowbit::ops {

namespace {

// Prefill (many queries): per head, scores S = Q_h K_hᵀ and output O_h = softmax(S) V_h as two
// BLAS GEMMs over strided views of q and the cache; the causal mask and softmax in between.
void attention_gemm(const float* q, const float* k, const float* v, float* out, int n, int pos0,
                    int n_heads, int n_kv_heads, int head_dim) {
  const int group = n_heads / n_kv_heads;
  const int q_stride = n_heads * head_dim;
  const int kv_stride = n_kv_heads * head_dim;
  const int len = pos0 + n;  // keys visible to the last query
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  std::vector<float> scores(static_cast<size_t>(n) * len);
  for (int h = 0; h < n_heads; ++h) {
    const float* qh = q + static_cast<size_t>(h) * head_dim;
    const size_t kv_off = static_cast<size_t>(h / group) * head_dim;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, len, head_dim, scale, qh, q_stride,
                k + kv_off, kv_stride, 0.0f, scores.data(), len);
#pragma omp parallel for schedule(static)
    for (int t = 0; t < n; ++t) {
      float* row = scores.data() + static_cast<size_t>(t) * len;
      const int visible = pos0 + t + 1;
      float mx = -INFINITY;
      for (int j = 0; j < visible; ++j) mx = std::max(mx, row[j]);
      float sum = 0.0f;
      for (int j = 0; j < visible; ++j) {
        row[j] = std::exp(row[j] - mx);
        sum += row[j];
      }
      const float inv = 1.0f / sum;
      for (int j = 0; j < visible; ++j) row[j] *= inv;
      std::fill(row + visible, row + len, 0.0f);  // causal mask
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, head_dim, len, 1.0f, scores.data(),
                len, v + kv_off, kv_stride, 0.0f, out + static_cast<size_t>(h) * head_dim,
                q_stride);
  }
}

}  // namespace

void attention(const float* q, const float* k, const float* v, float* out, int n, int pos0,
               int n_heads, int n_kv_heads, int head_dim) {
  if (n >= 16) {
    attention_gemm(q, k, v, out, n, pos0, n_heads, n_kv_heads, head_dim);
    return;
  }
  const int group = n_heads / n_kv_heads;
  const size_t q_stride = static_cast<size_t>(n_heads) * head_dim;
  const size_t kv_stride = static_cast<size_t>(n_kv_heads) * head_dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  const int total = n * n_heads;
  const long long work = static_cast<long long>(total) * (pos0 + n) * head_dim;
#pragma omp parallel if (work >= (1 << 15))
  {
    std::vector<float> scores(static_cast<size_t>(pos0 + n));
#pragma omp for schedule(dynamic, 4)
    for (int job = 0; job < total; ++job) {
      const int t = job / n_heads;
      const int h = job % n_heads;
      const int len = pos0 + t + 1;  // causal: keys 0..pos0+t
      const float* qh = q + t * q_stride + static_cast<size_t>(h) * head_dim;
      const size_t kv_off = static_cast<size_t>(h / group) * head_dim;
      float max_s = -INFINITY;
      for (int j = 0; j < len; ++j) {
        const float* kj = k + j * kv_stride + kv_off;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int d = 0; d < head_dim; ++d) s += qh[d] * kj[d];
        s *= scale;
        scores[static_cast<size_t>(j)] = s;
        max_s = std::max(max_s, s);
      }
      float sum = 0.0f;
      for (int j = 0; j < len; ++j) {
        const float e = std::exp(scores[static_cast<size_t>(j)] - max_s);
        scores[static_cast<size_t>(j)] = e;
        sum += e;
      }
      const float inv = 1.0f / sum;
      float* oh = out + t * q_stride + static_cast<size_t>(h) * head_dim;
      std::fill(oh, oh + head_dim, 0.0f);
      for (int j = 0; j < len; ++j) {
        const float p = scores[static_cast<size_t>(j)] * inv;
        const float* vj = v + j * kv_stride + kv_off;
#pragma omp simd
        for (int d = 0; d < head_dim; ++d) oh[d] += p * vj[d];
      }
    }
  }
}

}  // namespace lowbit::ops
