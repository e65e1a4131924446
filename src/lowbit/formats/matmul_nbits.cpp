#include "lowbit/formats/matmul_nbits.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "lowbit/formats/pack.h"
#include "lowbit/util/error.h"

namespace lowbit {

namespace {

bool is_pow2(int64_t v) { return v > 0 && (v & (v - 1)) == 0; }

// The block size for groups of G consecutive columns in rows of K (see the header).
int choose_block_size(const std::string& where, int group, int K, int n_groups) {
  if (n_groups == 1) {
    for (int b = 128; b >= 16; b /= 2) {
      if (K % b == 0) return b;
    }
    int b = 16;
    while (b < K) b *= 2;
    return b;
  }
  for (int b = 1 << 30; b >= 16; b /= 2) {
    if (group % b == 0) return b;
  }
  fail(where,
       "group size {} cannot be written as MatMulNBits blocks (a power of two >= 16 must divide "
       "it)",
       group);
}

}  // namespace

void MatMulNBitsWeight::check(const std::string& where) const {
  if (bits != 2 && bits != 4 && bits != 8)
    fail(where, "MatMulNBits bits {} (expected 2, 4 or 8)", bits);
  if (!is_pow2(block_size) || block_size < 16 || block_size > (1 << 24)) {
    fail(where, "MatMulNBits block_size {} is not a power of two >= 16", block_size);
  }
  constexpr int64_t kMaxDim = std::numeric_limits<int32_t>::max();
  if (K <= 0 || N <= 0 || K > kMaxDim || N > kMaxDim) {
    fail(where, "MatMulNBits K={} N={} out of range", K, N);
  }
  const auto nb = static_cast<uint64_t>(N) * static_cast<uint64_t>(k_blocks());
  if (nb > static_cast<uint64_t>(kMaxDim)) {
    fail(where, "MatMulNBits N={} x {} blocks is too large", N, k_blocks());
  }
  if (B.size() != nb * static_cast<uint64_t>(blob_size())) {
    fail(where, "MatMulNBits B has {} bytes, expected {} ([N={}, k_blocks={}, blob_size={}])",
         B.size(), nb * static_cast<uint64_t>(blob_size()), N, k_blocks(), blob_size());
  }
  if (scales.size() != nb)
    fail(where, "MatMulNBits scales has {} values, expected {}", scales.size(), nb);
  for (float s : scales) {
    if (!std::isfinite(s)) fail(where, "MatMulNBits scales hold a non-finite value");
  }
  if (!zero_points.empty() &&
      zero_points.size() !=
          static_cast<uint64_t>(N) * static_cast<uint64_t>(zero_point_row_bytes())) {
    fail(where, "MatMulNBits zero_points has {} bytes, expected {}", zero_points.size(),
         static_cast<uint64_t>(N) * static_cast<uint64_t>(zero_point_row_bytes()));
  }
  if (!g_idx.empty()) {
    if (g_idx.size() != static_cast<uint64_t>(K)) {
      fail(where, "MatMulNBits g_idx has {} entries, expected K={}", g_idx.size(), K);
    }
    for (int32_t g : g_idx) {
      if (g < 0 || g >= k_blocks())
        fail(where, "MatMulNBits g_idx entry {} outside [0, {})", g, k_blocks());
    }
  }
  if (!perm.empty()) {
    if (!g_idx.empty()) fail(where, "both g_idx and a column order given");
    if (perm.size() != static_cast<uint64_t>(K)) {
      fail(where, "column order has {} entries, expected K={}", perm.size(), K);
    }
    std::vector<char> seen(static_cast<size_t>(K), 0);
    for (int64_t p : perm) {
      if (p < 0 || p >= K || seen[static_cast<size_t>(p)]) {
        fail(where, "column order is not a permutation of [0, {})", K);
      }
      seen[static_cast<size_t>(p)] = 1;
    }
  }
}

MatMulNBitsWeight to_matmul_nbits(const std::string& where, const QuantizedWeight& w) {
  w.check(where);
  const QuantScheme& s = w.scheme;
  if (s.type != WeightType::kInt) {
    fail(where, "{} weights cannot be written as MatMulNBits (integer schemes only)",
         weight_type_name(s.type, s.bits));
  }
  const int K = w.in, N = w.out;
  const int G = s.group_size < 0 ? K : std::min(s.group_size, K);
  MatMulNBitsWeight m;
  m.K = K;
  m.N = N;
  m.bits = s.bits == 3 ? 4 : s.bits;
  m.block_size = choose_block_size(where, G, K, w.n_groups);

  // Column order: stable sort by group; stored column j must then belong to group j / G.
  std::vector<int64_t> order(static_cast<size_t>(K));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return w.g_idx[a] < w.g_idx[b]; });
  bool permuted = false;
  for (int64_t j = 0; j < K; ++j) {
    const int expected = w.n_groups == 1 ? 0 : static_cast<int>(j / G);
    if (w.g_idx[static_cast<size_t>(order[j])] != expected) {
      fail(where,
           "g_idx does not split the columns into consecutive groups of {} in any order (column "
           "{} in group {})",
           G, order[j], w.g_idx[static_cast<size_t>(order[j])]);
    }
    if (order[j] != j) permuted = true;
  }
  if (permuted) m.perm = order;

  const int64_t kb = m.k_blocks();
  const int64_t bs = m.block_size;
  const int default_zero = 1 << (m.bits - 1);
  const int maxq = (1 << s.bits) - 1;
  bool all_default = true;
  std::vector<uint8_t> zeros(static_cast<size_t>(N * kb));
  m.scales.resize(static_cast<size_t>(N * kb));
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t b = 0; b < kb; ++b) {
      const int64_t col = order[static_cast<size_t>(b * bs)];
      const GroupParams& p =
          w.params[static_cast<size_t>(n * w.n_groups + w.g_idx[static_cast<size_t>(col)])];
      const float z = p.zero;
      if (!(z == std::nearbyint(z)) || z < 0 || z > maxq) {
        fail(where, "zero point {} of row {} is not an integer in [0, {}]", z, n, maxq);
      }
      zeros[static_cast<size_t>(n * kb + b)] = static_cast<uint8_t>(z);
      if (static_cast<int>(z) != default_zero) all_default = false;
      m.scales[static_cast<size_t>(n * kb + b)] = p.scale;
    }
  }
  // Codes in stored order, padded to whole blocks with the block's zero (dequantizes to 0).
  std::vector<uint8_t> codes(static_cast<size_t>(N * kb * bs));
  for (int64_t n = 0; n < N; ++n) {
    const uint8_t* row = &w.q[static_cast<size_t>(n * K)];
    uint8_t* dst = &codes[static_cast<size_t>(n * kb * bs)];
    for (int64_t j = 0; j < kb * bs; ++j) {
      dst[j] =
          j < K ? row[order[static_cast<size_t>(j)]] : zeros[static_cast<size_t>(n * kb + j / bs)];
    }
  }
  m.B = pack_rows(codes.data(), static_cast<int>(N * kb), static_cast<int>(bs), m.bits);
  if (!all_default) m.zero_points = pack_rows(zeros.data(), N, static_cast<int>(kb), m.bits);
  m.check(where);
  return m;
}

QuantizedWeight from_matmul_nbits(const std::string& where, const MatMulNBitsWeight& m) {
  m.check(where);
  const int64_t K = m.K, N = m.N, kb = m.k_blocks(), bs = m.block_size;
  QuantizedWeight w;
  w.scheme.type = WeightType::kInt;
  w.scheme.bits = m.bits;
  w.scheme.group_size = m.block_size;
  w.scheme.sym = m.zero_points.empty();
  w.scheme.scale_type = ScaleType::kF32;
  w.out = static_cast<int>(N);
  w.in = static_cast<int>(K);
  w.n_groups = static_cast<int>(kb);
  const std::vector<uint8_t> codes =
      unpack_rows(m.B.data(), static_cast<int>(N * kb), static_cast<int>(bs), m.bits);
  std::vector<uint8_t> zeros;
  if (!m.zero_points.empty()) {
    zeros = unpack_rows(m.zero_points.data(), static_cast<int>(N), static_cast<int>(kb), m.bits);
  }
  const float default_zero = static_cast<float>(1 << (m.bits - 1));
  w.params.resize(static_cast<size_t>(N * kb));
  for (int64_t i = 0; i < N * kb; ++i) {
    w.params[static_cast<size_t>(i)].scale = m.scales[static_cast<size_t>(i)];
    w.params[static_cast<size_t>(i)].zero =
        zeros.empty() ? default_zero : static_cast<float>(zeros[static_cast<size_t>(i)]);
  }
  w.q.resize(static_cast<size_t>(N * K));
  w.g_idx.resize(static_cast<size_t>(K));
  for (int64_t j = 0; j < K; ++j) {
    // Stored column j: input column perm[j] (or j), block g_idx[j] (or j / block_size).
    const int64_t col = m.perm.empty() ? j : m.perm[static_cast<size_t>(j)];
    w.g_idx[static_cast<size_t>(col)] =
        m.g_idx.empty() ? static_cast<int32_t>(j / bs) : m.g_idx[static_cast<size_t>(j)];
  }
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t j = 0; j < K; ++j) {
      const int64_t col = m.perm.empty() ? j : m.perm[static_cast<size_t>(j)];
      w.q[static_cast<size_t>(n * K + col)] = codes[static_cast<size_t>(n * kb * bs + j)];
    }
  }
  w.check(where);
  return w;
}

std::vector<float> dequantize_matmul_nbits(const std::string& where, const MatMulNBitsWeight& m) {
  m.check(where);
  const int64_t K = m.K, N = m.N, kb = m.k_blocks(), bs = m.block_size;
  const std::vector<uint8_t> codes =
      unpack_rows(m.B.data(), static_cast<int>(N * kb), static_cast<int>(bs), m.bits);
  std::vector<uint8_t> zeros;
  if (!m.zero_points.empty()) {
    zeros = unpack_rows(m.zero_points.data(), static_cast<int>(N), static_cast<int>(kb), m.bits);
  }
  std::vector<float> w(static_cast<size_t>(N * K));
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t j = 0; j < K; ++j) {
      const int64_t b = m.g_idx.empty() ? j / bs : m.g_idx[static_cast<size_t>(j)];
      const float zero = zeros.empty() ? static_cast<float>(1 << (m.bits - 1))
                                       : static_cast<float>(zeros[static_cast<size_t>(n * kb + b)]);
      const float code = codes[static_cast<size_t>(n * kb * bs + j)];
      const int64_t col = m.perm.empty() ? j : m.perm[static_cast<size_t>(j)];
      w[static_cast<size_t>(n * K + col)] =
          (code - zero) * m.scales[static_cast<size_t>(n * kb + b)];
    }
  }
  return w;
}

}  // namespace lowbit
