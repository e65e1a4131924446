#include "lowbit/ops/matmul.h"

#include <omp.h>

#include <algorithm>

#include "lowbit/kernels/blas.h"
#include "lowbit/kernels/packed_matmul.h"
#include "lowbit/util/simd.h"

namespace lowbit::ops {

namespace {

// y[r] = W[r, :] · x for rows [r0, r1). Four rows at a time share each load of x and keep four
// independent memory streams in flight, which is what a bandwidth-bound GEMV needs.
void gemv_rows(const float* w, const float* x, float* y, int r0, int r1, int in) {
  int r = r0;
#if defined(__AVX512F__)
  const int tail = in % 16;
  const __mmask16 tm = static_cast<__mmask16>((1u << tail) - 1);
  const int body = in - tail;
  for (; r + 8 <= r1; r += 8) {  // eight rows: eight memory streams in flight
    const float* w0 = w + static_cast<size_t>(r) * in;
    __m512 acc[8];
    for (int j = 0; j < 8; ++j) acc[j] = _mm512_setzero_ps();
    for (int i = 0; i < body; i += 16) {
      const __m512 xv = _mm512_loadu_ps(x + i);
      for (int j = 0; j < 8; ++j) {
        acc[j] = _mm512_fmadd_ps(_mm512_loadu_ps(w0 + static_cast<size_t>(j) * in + i), xv, acc[j]);
      }
    }
    if (tail) {
      const __m512 xv = _mm512_maskz_loadu_ps(tm, x + body);
      for (int j = 0; j < 8; ++j) {
        acc[j] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tm, w0 + static_cast<size_t>(j) * in + body),
                                 xv, acc[j]);
      }
    }
    for (int j = 0; j < 8; ++j) y[r + j] = _mm512_reduce_add_ps(acc[j]);
  }
  for (; r + 4 <= r1; r += 4) {
    const float* w0 = w + static_cast<size_t>(r) * in;
    const float* w1 = w0 + in;
    const float* w2 = w1 + in;
    const float* w3 = w2 + in;
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    __m512 a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    for (int i = 0; i < body; i += 16) {
      const __m512 xv = _mm512_loadu_ps(x + i);
      a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w0 + i), xv, a0);
      a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w1 + i), xv, a1);
      a2 = _mm512_fmadd_ps(_mm512_loadu_ps(w2 + i), xv, a2);
      a3 = _mm512_fmadd_ps(_mm512_loadu_ps(w3 + i), xv, a3);
    }
    if (tail) {
      const __m512 xv = _mm512_maskz_loadu_ps(tm, x + body);
      a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tm, w0 + body), xv, a0);
      a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tm, w1 + body), xv, a1);
      a2 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tm, w2 + body), xv, a2);
      a3 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tm, w3 + body), xv, a3);
    }
    y[r] = _mm512_reduce_add_ps(a0);
    y[r + 1] = _mm512_reduce_add_ps(a1);
    y[r + 2] = _mm512_reduce_add_ps(a2);
    y[r + 3] = _mm512_reduce_add_ps(a3);
  }
#endif
  for (; r < r1; ++r) {
    const float* wr = w + static_cast<size_t>(r) * in;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < in; ++i) s += wr[i] * x[i];
    y[r] = s;
  }
}

// Rows [begin, end) of `total` for thread `t` of `nt`, in blocks of 4 rows.
void split_rows(int total, int t, int nt, int* begin, int* end) {
  const int blocks = (total + 3) / 4;
  const int b0 = static_cast<int>(static_cast<long long>(blocks) * t / nt);
  const int b1 = static_cast<int>(static_cast<long long>(blocks) * (t + 1) / nt);
  *begin = std::min(total, b0 * 4);
  *end = std::min(total, b1 * 4);
}

void add_bias(const Linear& l, int n, float* y) {
  if (l.bias == nullptr) return;
  for (int t = 0; t < n; ++t) {
    float* row = y + static_cast<size_t>(t) * l.out;
    for (int o = 0; o < l.out; ++o) row[o] += l.bias[o];
  }
}

}  // namespace

void gemv(const float* w, const float* x, float* y, int out, int in) {
  // Threads only pay off once the matrix is large enough (fork/join costs microseconds).
  const bool big = static_cast<long long>(out) * in >= (1 << 16);
#pragma omp parallel if (big)
  {
    int b, e;
    split_rows(out, omp_get_thread_num(), omp_get_num_threads(), &b, &e);
    gemv_rows(w, x, y, b, e, in);
  }
}

void linear(const Linear& l, const float* x, int n, float* y) {
  if (l.in_scale != nullptr) {
    // x / s into a buffer of this thread, then the linear without the scale.
    static thread_local std::vector<float> xs;
    xs.resize(static_cast<size_t>(n) * l.in);
    for (int t = 0; t < n; ++t) {
      const float* src = x + static_cast<size_t>(t) * l.in;
      float* dst = xs.data() + static_cast<size_t>(t) * l.in;
      for (int k = 0; k < l.in; ++k) dst[k] = src[k] / l.in_scale[k];
    }
    Linear plain = l;
    plain.in_scale = nullptr;
    linear(plain, xs.data(), n, y);
    return;
  }
  if (l.packed != nullptr) {
    kernels::packed_matmul(*l.packed, y, x, n);
  } else if (n == 1) {
    gemv(l.w, x, y, l.out, l.in);
  } else {
    kernels::sgemm(false, true, n, l.out, l.in, 1.0f, x, l.in, l.w, l.in, 0.0f, y, l.out);
  }
  add_bias(l, n, y);
}

void linear_multi(const Linear* const* ls, float* const* ys, int count, const float* x, int n) {
  for (int i = 0; i < count; ++i) {
    if (ls[i]->in_scale != nullptr) {  // each reads its own scaled input
      for (int j = 0; j < count; ++j) linear(*ls[j], x, n, ys[j]);
      return;
    }
  }
  int n_packed = 0;
  for (int i = 0; i < count; ++i) n_packed += ls[i]->packed != nullptr;
  if (n_packed == count && count <= 8) {
    // Weights in a compute layout: one kernel call for the group.
    const kernels::PackedWeight* ws[8];
    for (int i = 0; i < count; ++i) ws[i] = ls[i]->packed;
    kernels::packed_matmul(ws, ys, count, x, n);
    for (int i = 0; i < count; ++i) add_bias(*ls[i], n, ys[i]);
    return;
  }
  if (n != 1 || n_packed > 0) {
    for (int i = 0; i < count; ++i) linear(*ls[i], x, n, ys[i]);
    return;
  }
  // Decode: one parallel region for all the layers that read the same input.
  long long work = 0;
  for (int i = 0; i < count; ++i) work += static_cast<long long>(ls[i]->out) * ls[i]->in;
#pragma omp parallel if (work >= (1 << 16))
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    for (int i = 0; i < count; ++i) {
      int b, e;
      split_rows(ls[i]->out, t, nt, &b, &e);
      gemv_rows(ls[i]->w, x, ys[i], b, e, ls[i]->in);
    }
  }
  for (int i = 0; i < count; ++i) add_bias(*ls[i], 1, ys[i]);
}

}  // namespace lowbit::ops
