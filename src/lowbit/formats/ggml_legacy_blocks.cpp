// ggml's blocks of 32 values with one fp16 scale (and min): q4_0, q4_1, q5_0, q5_1, q8_0, iq4_nl.
// Layouts (little-endian, llama.cpp ggml-common.h):
//   q4_0   {f16 d; u8 qs[16]}                 x = d·(q − 8)
//   q4_1   {f16 d; f16 m; u8 qs[16]}          x = d·q + m
//   q5_0   {f16 d; u8 qh[4]; u8 qs[16]}       x = d·(q − 16)
//   q5_1   {f16 d; f16 m; u8 qh[4]; u8 qs[16]} x = d·q + m
//   q8_0   {f16 d; i8 qs[32]}                 x = d·q
//   iq4_nl {f16 d; u8 qs[16]}                 x = d·table[q]
// Value j's low 4 bits are the low nibble of qs[j] for j < 16 and the high nibble of qs[j − 16]
// for j ≥ 16; the 5th bit of value j is bit j of qh read as a little-endian u32.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "lowbit/formats/ggml_block_codec.h"
#include "lowbit/formats/ggml_fit.h"

namespace lowbit::gguf::detail {

namespace {

constexpr int kN = 32;

// --- nibbles and high bits -----------------------------------------------------------------------

int nibble(const uint8_t* qs, int j) { return j < 16 ? (qs[j] & 0x0F) : (qs[j - 16] >> 4); }

void pack_nibbles(uint8_t* qs, const uint8_t* q) {
  for (int j = 0; j < 16; ++j)
    qs[j] = static_cast<uint8_t>((q[j] & 0x0F) | ((q[j + 16] & 0x0F) << 4));
}

uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// 5-bit codes: low nibbles in qs, 5th bits in the u32 at qh.
void get5(const uint8_t* qh, const uint8_t* qs, uint8_t* q) {
  const uint32_t h = load_u32(qh);
  for (int j = 0; j < kN; ++j) q[j] = static_cast<uint8_t>(nibble(qs, j) | (((h >> j) & 1u) << 4));
}
void set5(uint8_t* qh, uint8_t* qs, const uint8_t* q) {
  pack_nibbles(qs, q);
  uint32_t h = 0;
  for (int j = 0; j < kN; ++j) h |= static_cast<uint32_t>((q[j] >> 4) & 1) << j;
  std::memcpy(qh, &h, 4);
}

// --- the layouts ---------------------------------------------------------------------------------

// Where each type keeps its fields: d at 0, m (if any) at 2, qh (if any), then the codes.
struct Layout {
  int bits;      // 4, 5 or 8
  bool has_min;  // q4_1, q5_1
  int zero;      // code of 0 for the symmetric types (8, 16, 128); 0 with a min
  int qh_at() const { return has_min ? 4 : 2; }
  int qs_at() const { return bits == 5 ? qh_at() + 4 : (has_min ? 4 : 2); }
};

template <int kBits, bool kMin>
constexpr Layout layout() {
  return {kBits, kMin, kMin ? 0 : (1 << (kBits - 1))};
}

template <int kBits, bool kMin>
void get_codes_t(const uint8_t* b, uint8_t* q) {
  constexpr Layout L = layout<kBits, kMin>();
  if constexpr (kBits == 8) {
    for (int j = 0; j < kN; ++j) q[j] = static_cast<uint8_t>(static_cast<int8_t>(b[2 + j]) + 128);
  } else if constexpr (kBits == 5) {
    get5(b + L.qh_at(), b + L.qs_at(), q);
  } else {
    for (int j = 0; j < kN; ++j) q[j] = static_cast<uint8_t>(nibble(b + L.qs_at(), j));
  }
}

template <int kBits, bool kMin>
void set_codes_t(uint8_t* b, const uint8_t* q) {
  constexpr Layout L = layout<kBits, kMin>();
  if constexpr (kBits == 8) {
    for (int j = 0; j < kN; ++j) b[2 + j] = static_cast<uint8_t>(static_cast<int>(q[j]) - 128);
  } else if constexpr (kBits == 5) {
    set5(b + L.qh_at(), b + L.qs_at(), q);
  } else {
    pack_nibbles(b + L.qs_at(), q);
  }
}

template <int kBits, bool kMin>
void decode_t(const uint8_t* b, float* out) {
  constexpr Layout L = layout<kBits, kMin>();
  uint8_t q[kN];
  get_codes_t<kBits, kMin>(b, q);
  const float d = load_f16(b);
  if constexpr (kMin) {
    const float m = load_f16(b + 2);
    for (int j = 0; j < kN; ++j) out[j] = static_cast<float>(q[j]) * d + m;
  } else {
    for (int j = 0; j < kN; ++j) out[j] = static_cast<float>(q[j] - L.zero) * d;
  }
}

template <int kBits, bool kMin>
void grid_t(const uint8_t* b, float* scale, float* offset) {
  constexpr Layout L = layout<kBits, kMin>();
  const float d = load_f16(b);
  const float off = kMin ? load_f16(b + 2) : -static_cast<float>(L.zero) * d;
  std::fill(scale, scale + kN, d);
  std::fill(offset, offset + kN, off);
}

// --- encoders without importance (llama.cpp's quantize_row_*_ref) --------------------------------

// The value of largest magnitude, with its sign (the first one on ties).
float signed_absmax(const float* x) {
  float amax = 0, peak = 0;
  for (int j = 0; j < kN; ++j)
    if (std::fabs(x[j]) > amax) {
      amax = std::fabs(x[j]);
      peak = x[j];
    }
  return peak;
}

// Symmetric 4/5-bit: d = peak / −zero so that the peak gets code 0; codes truncate x/d + zero + ½.
template <int kBits>
void encode_symmetric_ref(const float* x, uint8_t* b) {
  constexpr int kZero = 1 << (kBits - 1), kMax = (1 << kBits) - 1;
  const float d = signed_absmax(x) / static_cast<float>(-kZero);
  const float id = d != 0 ? 1.0f / d : 0.0f;
  store_f16(b, d);
  uint8_t q[kN];
  for (int j = 0; j < kN; ++j)
    q[j] = static_cast<uint8_t>(
        std::min(kMax, static_cast<int>(x[j] * id + (static_cast<float>(kZero) + 0.5f))));
  set_codes_t<kBits, false>(b, q);
}

// With a min: d = (max − min)/(2^bits − 1), m = min; codes truncate (x − min)/d + ½.
template <int kBits>
void encode_min_ref(const float* x, uint8_t* b) {
  constexpr int kMax = (1 << kBits) - 1;
  float lo = FLT_MAX, hi = -FLT_MAX;
  for (int j = 0; j < kN; ++j) {
    lo = std::min(lo, x[j]);
    hi = std::max(hi, x[j]);
  }
  const float d = (hi - lo) / static_cast<float>(kMax);
  const float id = d != 0 ? 1.0f / d : 0.0f;
  store_f16(b, d);
  store_f16(b + 2, lo);
  uint8_t q[kN];
  for (int j = 0; j < kN; ++j)
    q[j] = static_cast<uint8_t>(std::min(kMax, static_cast<int>((x[j] - lo) * id + 0.5f)));
  set_codes_t<kBits, true>(b, q);
}

// --- encoders with importance (llama.cpp's quantize_row_*_impl with quant_weights) ---------------

void importance_weights(const float* x, const float* imp, float sigma2, float* w) {
  for (int j = 0; j < kN; ++j) w[j] = imp[j] * std::sqrt(sigma2 + x[j] * x[j]);
}

template <int kBits>
void encode_symmetric(const float* x, const float* imp, float sigma2, uint8_t* b) {
  if (!imp) return encode_symmetric_ref<kBits>(x, b);
  float w[kN];
  importance_weights(x, imp, sigma2, w);
  uint8_t q[kN];
  store_f16(b, fit::symmetric(kN, 1 << (kBits - 1), x, w, q));
  set_codes_t<kBits, false>(b, q);
}

template <int kBits>
void encode_min(const float* x, const float* imp, float sigma2, uint8_t* b) {
  if (!imp) return encode_min_ref<kBits>(x, b);
  float w[kN];
  importance_weights(x, imp, sigma2, w);
  uint8_t q[kN], aux[kN];
  float neg_min = 0;
  const float d = fit::with_min(kN, (1 << kBits) - 1, x, w, q, &neg_min, aux, -0.9f, 0.05f, 36);
  store_f16(b, d);
  store_f16(b + 2, -neg_min);
  set_codes_t<kBits, true>(b, q);
}

// q8_0 has one encoder: d = absmax/127, codes round half away from zero (importance unused).
void encode_q8_0(const float* x, const float*, float, uint8_t* b) {
  float amax = 0;
  for (int j = 0; j < kN; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.f;
  const float id = d != 0 ? 1.0f / d : 0.0f;
  store_f16(b, d);
  for (int j = 0; j < kN; ++j)
    b[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::round(x[j] * id)));
}

// --- iq4_nl --------------------------------------------------------------------------------------

constexpr int8_t kIq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                               1,    13,   25,  38,  53,  69,  89,  113};
constexpr float kIq4nlF[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                               1,    13,   25,  38,  53,  69,  89,  113};

void decode_iq4nl(const uint8_t* b, float* out) {
  const float d = load_f16(b);
  for (int j = 0; j < kN; ++j) out[j] = d * kIq4nlF[nibble(b + 2, j)];
}

void grid_iq4nl(const uint8_t* b, float* scale, float* offset) {
  std::fill(scale, scale + kN, load_f16(b));
  std::fill(offset, offset + kN, 0.f);
}

// Σ w·t·x and Σ w·t² of the table entries nearest id·x.
void table_sums(const float* x, const float* w, float id, float* sqx, float* sq2,
                uint8_t* codes = nullptr) {
  float sumqx = 0, sumq2 = 0;
  for (int j = 0; j < kN; ++j) {
    const int l = fit::nearest_level(kIq4nl, id * x[j]);
    if (codes) codes[j] = static_cast<uint8_t>(l);
    const float t = kIq4nlF[l];
    sumqx += w[j] * t * x[j];
    sumq2 += w[j] * t * t;
  }
  *sqx = sumqx;
  *sq2 = sumq2;
}

// llama.cpp's iq4_nl search (quantize_row_iq4_nl_impl with one block of 32, ntry = 7): start
// from d = peak/127, refit d by weighted least squares, try the reciprocals (k − 127)/peak for
// k = −7 … 7, keep the best d; the codes are the table entries nearest x/d (d before rounding to
// fp16). Weights: x² without importance, importance·sqrt(σ² + x²) with (σ² = 2·Σx²/32).
void encode_iq4nl(const float* x, const float* imp, float, uint8_t* b) {
  float sigma2 = 0;
  for (int j = 0; j < kN; ++j) sigma2 += x[j] * x[j];
  sigma2 *= 2.f / kN;
  float w[kN];
  for (int j = 0; j < kN; ++j) w[j] = imp ? imp[j] * std::sqrt(sigma2 + x[j] * x[j]) : x[j] * x[j];
  float amax = 0, peak = 0;
  for (int j = 0; j < kN; ++j)
    if (std::fabs(x[j]) > amax) {
      amax = std::fabs(x[j]);
      peak = x[j];
    }
  float d = 0;
  if (amax >= fit::kGroupMaxEps) {
    constexpr int kTries = 7;
    d = -peak / static_cast<float>(kIq4nl[0]);
    float sumqx, sumq2;
    table_sums(x, w, 1 / d, &sumqx, &sumq2);
    d = sumqx / sumq2;
    float best = d * sumqx;
    for (int k = -kTries; k <= kTries; ++k) {
      const float id = static_cast<float>(k + kIq4nl[0]) / peak;
      table_sums(x, w, id, &sumqx, &sumq2);
      if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
        d = sumqx / sumq2;
        best = d * sumqx;
      }
    }
  }
  store_f16(b, d);
  const float id = d != 0 ? 1 / d : 0.f;
  uint8_t q[kN];
  for (int j = 0; j < kN; ++j) q[j] = static_cast<uint8_t>(fit::nearest_level(kIq4nl, id * x[j]));
  pack_nibbles(b + 2, q);
}

void get_codes_iq4nl(const uint8_t* b, uint8_t* q) { get_codes_t<4, false>(b, q); }
void set_codes_iq4nl(uint8_t* b, const uint8_t* q) { set_codes_t<4, false>(b, q); }

template <int kBits, bool kMin>
constexpr BlockCodec uniform_codec(GgmlType t,
                                   void (*enc)(const float*, const float*, float, uint8_t*)) {
  return {t,
          1 << kBits,
          nullptr,
          kN,
          decode_t<kBits, kMin>,
          grid_t<kBits, kMin>,
          get_codes_t<kBits, kMin>,
          set_codes_t<kBits, kMin>,
          enc};
}

const BlockCodec kCodecs[] = {
    uniform_codec<4, false>(GgmlType::kQ4_0, encode_symmetric<4>),
    uniform_codec<4, true>(GgmlType::kQ4_1, encode_min<4>),
    uniform_codec<5, false>(GgmlType::kQ5_0, encode_symmetric<5>),
    uniform_codec<5, true>(GgmlType::kQ5_1, encode_min<5>),
    uniform_codec<8, false>(GgmlType::kQ8_0, encode_q8_0),
    {GgmlType::kIQ4_NL, 16, kIq4nlF, kN, decode_iq4nl, grid_iq4nl, get_codes_iq4nl, set_codes_iq4nl,
     encode_iq4nl},
};

}  // namespace

const BlockCodec* legacy_codec(GgmlType t) {
  for (const BlockCodec& c : kCodecs)
    if (c.type == t) return &c;
  return nullptr;
}

}  // namespace lowbit::gguf::detail
