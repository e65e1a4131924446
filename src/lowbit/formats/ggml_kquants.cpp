// ggml's super-blocks of 256 values ("k-quants"): q4_k, q5_k, q6_k. Layouts (little-endian,
// llama.cpp ggml-common.h):
//   q4_k {f16 d; f16 dmin; u8 scales[12]; u8 qs[128]}            x = d·sc_j·q − dmin·m_j
//   q5_k {f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]}  the same with 5-bit q
//   q6_k {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}           x = d·scales_j·(q − 32)
// q4_k/q5_k: 8 sub-blocks of 32 values, each with a 6-bit scale sc_j and 6-bit min m_j packed in
// 12 bytes: for j < 4, sc_j = scales[j] & 63 and m_j = scales[j+4] & 63; for j ≥ 4, sc_j =
// (scales[j+4] & 15) | (scales[j−4] >> 6) << 4 and m_j = (scales[j+4] >> 4) | (scales[j] >> 6)
// << 4. The low nibbles come in 4 chunks of 64 values, 32 bytes each: value 64c + i is the low
// nibble of qs[32c + i] for i < 32 and the high nibble of qs[32c + i − 32] for i ≥ 32. q5_k's 5th
// bit of value v is bit v/32 of qh[v % 32]. q6_k: 16 sub-blocks of 16 values. Value v = 128h + 32k
// + l (h < 2, k < 4, l < 32): low 4 bits in ql[64h + l + 32·(k & 1)] (low nibble for k < 2, high
// for k ≥ 2), top 2 bits are bits 2k, 2k+1 of qh[32h + l]; its scale is scales[v/16].
#include <algorithm>
#include <cmath>
#include <cstring>

#include "lowbit/formats/ggml_block_codec.h"
#include "lowbit/formats/ggml_fit.h"

namespace lowbit::gguf::detail {

namespace {

constexpr int kQK = 256;

// --- 6-bit scales and mins of q4_k / q5_k -------------------------------------------------------

void get_scale_min(const uint8_t* s, int j, int* sc, int* m) {
  if (j < 4) {
    *sc = s[j] & 63;
    *m = s[j + 4] & 63;
  } else {
    *sc = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
    *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

void set_scales_mins(uint8_t* s, const uint8_t* sc, const uint8_t* m) {
  for (int j = 0; j < 4; ++j) {
    s[j] = static_cast<uint8_t>((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
    s[j + 4] = static_cast<uint8_t>((m[j] & 63) | ((m[j + 4] >> 4) << 6));
    s[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0x0F) | ((m[j + 4] & 0x0F) << 4));
  }
}

// --- q4_k / q5_k codes ---------------------------------------------------------------------------

template <int kBits>
constexpr int qs_at() {
  return kBits == 5 ? 48 : 16;
}

template <int kBits>
void get_codes_k(const uint8_t* b, uint8_t* q) {
  const uint8_t* qs = b + qs_at<kBits>();
  for (int v = 0; v < kQK; ++v) {
    const int c = v / 64, i = v % 64;
    const uint8_t byte = qs[32 * c + (i % 32)];
    int code = i < 32 ? (byte & 0x0F) : (byte >> 4);
    if constexpr (kBits == 5) code |= ((b[16 + v % 32] >> (v / 32)) & 1) << 4;
    q[v] = static_cast<uint8_t>(code);
  }
}

template <int kBits>
void set_codes_k(uint8_t* b, const uint8_t* q) {
  uint8_t* qs = b + qs_at<kBits>();
  for (int c = 0; c < 4; ++c)
    for (int i = 0; i < 32; ++i)
      qs[32 * c + i] =
          static_cast<uint8_t>((q[64 * c + i] & 0x0F) | ((q[64 * c + i + 32] & 0x0F) << 4));
  if constexpr (kBits == 5) {
    uint8_t* qh = b + 16;
    std::memset(qh, 0, 32);
    for (int v = 0; v < kQK; ++v) qh[v % 32] |= static_cast<uint8_t>(((q[v] >> 4) & 1) << (v / 32));
  }
}

// Sub-block j's d·sc_j and dmin·m_j.
void sub_scales(const uint8_t* b, float* dl, float* ml) {
  const float d = load_f16(b), dmin = load_f16(b + 2);
  for (int j = 0; j < 8; ++j) {
    int sc, m;
    get_scale_min(b + 4, j, &sc, &m);
    dl[j] = d * static_cast<float>(sc);
    ml[j] = dmin * static_cast<float>(m);
  }
}

template <int kBits>
void decode_k(const uint8_t* b, float* out) {
  float dl[8], ml[8];
  sub_scales(b, dl, ml);
  uint8_t q[kQK];
  get_codes_k<kBits>(b, q);
  for (int v = 0; v < kQK; ++v) out[v] = dl[v / 32] * static_cast<float>(q[v]) - ml[v / 32];
}

template <int kBits>
void grid_k(const uint8_t* b, float* scale, float* offset) {
  float dl[8], ml[8];
  sub_scales(b, dl, ml);
  for (int v = 0; v < kQK; ++v) {
    scale[v] = dl[v / 32];
    offset[v] = -ml[v / 32];
  }
}

// Codes for the stored (fp16, 6-bit) scales: nearest (x + dmin·m_j)/(d·sc_j), clamped; a
// sub-block whose scale is 0 keeps the codes of its fit.
template <int kBits>
void requantize_k(const float* x, const uint8_t* b, uint8_t* L) {
  const float d = load_f16(b), dmin = load_f16(b + 2);
  for (int j = 0; j < 8; ++j) {
    int sc, m;
    get_scale_min(b + 4, j, &sc, &m);
    const float dl = d * static_cast<float>(sc);
    if (dl == 0) continue;
    const float ml = dmin * static_cast<float>(m);
    for (int i = 0; i < 32; ++i) {
      const int l = fit::nearest_int((x[32 * j + i] + ml) / dl);
      L[32 * j + i] = static_cast<uint8_t>(std::clamp(l, 0, (1 << kBits) - 1));
    }
  }
}

// llama.cpp's quantize_row_q{4,5}_K_ref (no importance) and quantize_row_q{4,5}_K_impl (with).
template <int kBits>
void encode_k(const float* x, const float* imp, float, uint8_t* b) {
  constexpr int kMax = (1 << kBits) - 1;
  uint8_t L[kQK], aux[32], ls[8], lm[8];
  float scales[8], mins[8], w[32];
  std::memset(b, 0, 16);
  if (!imp) {
    // Each sub-block: weights sqrt(mean x²) + |x|, the min/scale search; then the 8 scales and 8
    // mins on 6 bits relative to their maxima.
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; ++j) {
      const float* xs = x + 32 * j;
      float sum_x2 = 0;
      for (int i = 0; i < 32; ++i) sum_x2 += xs[i] * xs[i];
      const float av_x = std::sqrt(sum_x2 / 32);
      for (int i = 0; i < 32; ++i) w[i] = av_x + std::fabs(xs[i]);
      scales[j] = kBits == 4
                      ? fit::with_min(32, kMax, xs, w, L + 32 * j, &mins[j], aux, -1.f, 0.1f, 20)
                      : fit::with_min(32, kMax, xs, w, L + 32 * j, &mins[j], aux, -0.5f, 0.1f, 15);
      if (scales[j] > max_scale) max_scale = scales[j];
      if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < 8; ++j) {
      // uint8 wrap then min(63), as llama.cpp (a negative fit scale becomes 63).
      ls[j] = std::min<uint8_t>(63, static_cast<uint8_t>(fit::nearest_int(inv_scale * scales[j])));
      lm[j] = std::min<uint8_t>(63, static_cast<uint8_t>(fit::nearest_int(inv_min * mins[j])));
    }
    store_f16(b, max_scale / 63.f);
    store_f16(b + 2, max_min / 63.f);
  } else {
    // Weights importance·sqrt(σ² + x²) with σ² = 2·Σx²/256 over the super-block; the 6-bit
    // scales and mins fitted by weighted least squares (weights: each sub-block's Σw).
    float sum_x2 = 0;
    for (int i = 0; i < kQK; ++i) sum_x2 += x[i] * x[i];
    const float sigma2 = 2 * sum_x2 / kQK;
    float sw[8];
    for (int j = 0; j < 8; ++j) {
      const float* xs = x + 32 * j;
      float sumw = 0;
      for (int i = 0; i < 32; ++i) {
        w[i] = imp[32 * j + i] * std::sqrt(sigma2 + xs[i] * xs[i]);
        sumw += w[i];
      }
      sw[j] = sumw;
      scales[j] = fit::with_min(32, kMax, xs, w, L + 32 * j, &mins[j], aux, -0.9f, 0.05f, 36);
    }
    const float d_block = fit::positive(8, 63, scales, ls, sw);
    const float m_block = fit::positive(8, 63, mins, lm, sw);
    store_f16(b, d_block);
    store_f16(b + 2, m_block);
  }
  set_scales_mins(b + 4, ls, lm);
  requantize_k<kBits>(x, b, L);
  set_codes_k<kBits>(b, L);
}

// --- q6_k ----------------------------------------------------------------------------------------

constexpr int kQL = 0, kQH = 128, kSC = 192, kD = 208;

void get_codes_q6k(const uint8_t* b, uint8_t* q) {
  for (int v = 0; v < kQK; ++v) {
    const int h = v / 128, k = (v % 128) / 32, l = v % 32;
    const uint8_t lo = b[kQL + 64 * h + l + 32 * (k & 1)];
    const int low = k < 2 ? (lo & 0x0F) : (lo >> 4);
    const int high = (b[kQH + 32 * h + l] >> (2 * k)) & 3;
    q[v] = static_cast<uint8_t>(low | (high << 4));
  }
}

void set_codes_q6k(uint8_t* b, const uint8_t* q) {
  std::memset(b + kQL, 0, 128 + 64);
  for (int v = 0; v < kQK; ++v) {
    const int h = v / 128, k = (v % 128) / 32, l = v % 32;
    b[kQL + 64 * h + l + 32 * (k & 1)] |= static_cast<uint8_t>((q[v] & 0x0F) << (k < 2 ? 0 : 4));
    b[kQH + 32 * h + l] |= static_cast<uint8_t>(((q[v] >> 4) & 3) << (2 * k));
  }
}

void decode_q6k(const uint8_t* b, float* out) {
  const float d = load_f16(b + kD);
  uint8_t q[kQK];
  get_codes_q6k(b, q);
  for (int v = 0; v < kQK; ++v) {
    const float dl = d * static_cast<float>(static_cast<int8_t>(b[kSC + v / 16]));
    out[v] = dl * static_cast<float>(q[v] - 32);
  }
}

void grid_q6k(const uint8_t* b, float* scale, float* offset) {
  const float d = load_f16(b + kD);
  for (int v = 0; v < kQK; ++v) {
    scale[v] = d * static_cast<float>(static_cast<int8_t>(b[kSC + v / 16]));
    offset[v] = -32.f * scale[v];
  }
}

// llama.cpp's quantize_row_q6_K_ref (weights x²) and quantize_row_q6_K_impl (the importance
// itself as weights): a symmetric fit per sub-block of 16, the 16 scales on int8 relative to the
// one of largest magnitude (−128 ↔ that scale), codes requantized for the stored scales.
void encode_q6k(const float* x, const float* imp, float, uint8_t* b) {
  uint8_t L[kQK];
  float scales[16];
  float max_scale = 0, max_abs = 0;
  for (int j = 0; j < 16; ++j) {
    scales[j] = fit::symmetric(16, 32, x + 16 * j, imp ? imp + 16 * j : nullptr, L + 16 * j);
    if (std::fabs(scales[j]) > max_abs) {
      max_abs = std::fabs(scales[j]);
      max_scale = scales[j];
    }
  }
  std::memset(b, 0, 210);
  if (max_abs < fit::kGroupMaxEps) return;  // all zero: d = 0, every byte 0
  const float iscale = -128.f / max_scale;
  store_f16(b + kD, 1 / iscale);
  for (int j = 0; j < 16; ++j)
    b[kSC + j] = static_cast<uint8_t>(
        static_cast<int8_t>(std::min(127, fit::nearest_int(iscale * scales[j]))));
  const float d = load_f16(b + kD);
  for (int j = 0; j < 16; ++j) {
    const float dl = d * static_cast<float>(static_cast<int8_t>(b[kSC + j]));
    if (dl == 0) continue;
    for (int i = 0; i < 16; ++i) {
      const int l = fit::nearest_int(x[16 * j + i] / dl);
      L[16 * j + i] = static_cast<uint8_t>(std::clamp(l, -32, 31) + 32);
    }
  }
  set_codes_q6k(b, L);
}

const BlockCodec kCodecs[] = {
    {GgmlType::kQ4_K, 16, nullptr, 32, decode_k<4>, grid_k<4>, get_codes_k<4>, set_codes_k<4>,
     encode_k<4>},
    {GgmlType::kQ5_K, 32, nullptr, 32, decode_k<5>, grid_k<5>, get_codes_k<5>, set_codes_k<5>,
     encode_k<5>},
    {GgmlType::kQ6_K, 64, nullptr, 16, decode_q6k, grid_q6k, get_codes_q6k, set_codes_q6k,
     encode_q6k},
};

}  // namespace

const BlockCodec* kquant_codec(GgmlType t) {
  for (const BlockCodec& c : kCodecs)
    if (c.type == t) return &c;
  return nullptr;
}

}  // namespace lowbit::gguf::detail
