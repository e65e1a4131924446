// ggml's block types (formats/ggml_blocks.h): hand-built blocks decode to the values their layout
// describes, encoded rows round-trip within their step, the grid of a block reproduces its decoder
// exactly and set_codes/get_codes touch only the codes, importance lowers the weighted error, and
// the encoders reproduce llama-quantize's bytes on a real model.
#include "lowbit/formats/ggml_blocks.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "lowbit/util/error.h"
#include "lowbit/util/half.h"
#include "test_util.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;
using gguf::GgmlType;

const GgmlType kQuantTypes[] = {GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ5_0,
                                GgmlType::kQ5_1, GgmlType::kQ8_0, GgmlType::kQ4_K,
                                GgmlType::kQ5_K, GgmlType::kQ6_K, GgmlType::kIQ4_NL};

// The IQ4_NL table of ggml-common.h (llama.cpp b4748), independent of the library's copy.
const int kIq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

void put_f16(std::vector<uint8_t>& b, size_t at, float v) {
  const uint16_t h = f32_to_f16(v);
  std::memcpy(b.data() + at, &h, 2);
}

// The fp16 fields of each block type (byte offsets), for tests that fill blocks with random bytes.
std::vector<int> f16_fields(GgmlType t) {
  switch (t) {
    case GgmlType::kQ4_1:
    case GgmlType::kQ5_1:
    case GgmlType::kQ4_K:
    case GgmlType::kQ5_K:
      return {0, 2};
    case GgmlType::kQ6_K:
      return {208};
    default:
      return {0};
  }
}

// Equal as numbers (−0 == +0: d·(q − 8) at q = 8 is −0 for a negative d, the grid gives +0).
bool same_float(float a, float b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

std::vector<float> gaussian_row(std::mt19937& rng, int n, float sigma, bool outliers) {
  std::normal_distribution<float> nd(0.f, sigma);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = nd(rng);
  if (outliers)
    for (int i = 0; i < n; i += 37) x[static_cast<size_t>(i)] *= 8;
  return x;
}

// --- hand-built blocks ---------------------------------------------------------------------------

// One block per type, built here byte by byte from the layout of docs/QUANT_FORMATS.md, with the
// values each should decode to computed from the same description.
struct HandBlock {
  std::vector<uint8_t> bytes;
  std::vector<float> want;
};

HandBlock hand_block(GgmlType t) {
  const int n = gguf::block_values(t);
  HandBlock h;
  h.bytes.assign(static_cast<size_t>(gguf::block_bytes(t)), 0);
  h.want.assign(static_cast<size_t>(n), 0.f);
  auto& b = h.bytes;
  const float d = 0.5f, m = -1.25f, dmin = 0.25f;  // exact in fp16
  auto code = [](int v, int levels) { return (v * 7 + 3) % levels; };
  switch (t) {
    case GgmlType::kQ4_0:
    case GgmlType::kQ4_1:
    case GgmlType::kIQ4_NL: {
      const bool with_min = t == GgmlType::kQ4_1;
      put_f16(b, 0, d);
      if (with_min) put_f16(b, 2, m);
      const size_t qs = with_min ? 4 : 2;
      for (int j = 0; j < 32; ++j) {
        const int q = code(j, 16);
        b[qs + static_cast<size_t>(j % 16)] |= static_cast<uint8_t>(j < 16 ? q : q << 4);
        h.want[static_cast<size_t>(j)] = t == GgmlType::kQ4_0   ? d * static_cast<float>(q - 8)
                                         : t == GgmlType::kQ4_1 ? d * static_cast<float>(q) + m
                                                                : d * static_cast<float>(kIq4nl[q]);
      }
      break;
    }
    case GgmlType::kQ5_0:
    case GgmlType::kQ5_1: {
      const bool with_min = t == GgmlType::kQ5_1;
      put_f16(b, 0, d);
      if (with_min) put_f16(b, 2, m);
      const size_t qh = with_min ? 4 : 2, qs = qh + 4;
      for (int j = 0; j < 32; ++j) {
        const int q = code(j, 32);
        b[qs + static_cast<size_t>(j % 16)] |=
            static_cast<uint8_t>(j < 16 ? (q & 15) : (q & 15) << 4);
        if (q & 16) b[qh + static_cast<size_t>(j / 8)] |= static_cast<uint8_t>(1 << (j % 8));
        h.want[static_cast<size_t>(j)] =
            with_min ? d * static_cast<float>(q) + m : d * static_cast<float>(q - 16);
      }
      break;
    }
    case GgmlType::kQ8_0: {
      put_f16(b, 0, d);
      for (int j = 0; j < 32; ++j) {
        const int q = code(j, 256) - 128;
        b[2 + static_cast<size_t>(j)] = static_cast<uint8_t>(static_cast<int8_t>(q));
        h.want[static_cast<size_t>(j)] = d * static_cast<float>(q);
      }
      break;
    }
    case GgmlType::kQ4_K:
    case GgmlType::kQ5_K: {
      const bool five = t == GgmlType::kQ5_K;
      put_f16(b, 0, d);
      put_f16(b, 2, dmin);
      // Scales 1+5j... and mins 60−7j (6 bits) packed as the layout describes.
      int sc[8], mn[8];
      for (int j = 0; j < 8; ++j) {
        sc[j] = (1 + 9 * j) % 64;
        mn[j] = (60 - 7 * j) % 64;
      }
      for (int j = 0; j < 4; ++j) {
        b[4 + j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
        b[8 + j] = static_cast<uint8_t>(mn[j] | ((mn[j + 4] >> 4) << 6));
        b[12 + j] = static_cast<uint8_t>((sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4));
      }
      const size_t qs = five ? 48 : 16;
      for (int v = 0; v < 256; ++v) {
        const int q = code(v, five ? 32 : 16);
        const int chunk = v / 64, i = v % 64;
        b[qs + static_cast<size_t>(32 * chunk + i % 32)] |=
            static_cast<uint8_t>(i < 32 ? (q & 15) : (q & 15) << 4);
        if (five && (q & 16))
          b[16 + static_cast<size_t>(v % 32)] |= static_cast<uint8_t>(1 << (v / 32));
        h.want[static_cast<size_t>(v)] =
            d * static_cast<float>(sc[v / 32]) * static_cast<float>(q) -
            dmin * static_cast<float>(mn[v / 32]);
      }
      break;
    }
    case GgmlType::kQ6_K: {
      put_f16(b, 208, d);
      int sc[16];
      for (int j = 0; j < 16; ++j) {
        sc[j] = j * 17 - 120;  // −120 … 135 → int8 wraps above 127: keep inside
        if (sc[j] > 127) sc[j] = 127;
        b[192 + static_cast<size_t>(j)] = static_cast<uint8_t>(static_cast<int8_t>(sc[j]));
      }
      for (int v = 0; v < 256; ++v) {
        const int q = code(v, 64);
        const int half = v / 128, k = (v % 128) / 32, l = v % 32;
        b[static_cast<size_t>(64 * half + l + (k % 2) * 32)] |=
            static_cast<uint8_t>(k < 2 ? (q & 15) : (q & 15) << 4);
        b[128 + static_cast<size_t>(32 * half + l)] |= static_cast<uint8_t>((q >> 4) << (2 * k));
        h.want[static_cast<size_t>(v)] =
            d * static_cast<float>(sc[v / 16]) * static_cast<float>(q - 32);
      }
      break;
    }
    default:
      break;
  }
  return h;
}

TEST(GgmlBlocks, HandBuiltBlocksDecodeToTheirLayoutsValues) {
  for (GgmlType t : kQuantTypes) {
    SCOPED_TRACE(gguf::type_name(t));
    const HandBlock h = hand_block(t);
    std::vector<float> got(h.want.size());
    gguf::dequantize_row(t, h.bytes.data(), got.data(), static_cast<int64_t>(got.size()));
    for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], h.want[i]) << "value " << i;
    // The codes the layout put there, and the grid that maps them to the values.
    std::vector<uint8_t> codes(got.size());
    gguf::get_codes(t, h.bytes.data(), codes.data());
    std::vector<float> scale(got.size()), offset(got.size());
    gguf::block_grid(t, h.bytes.data(), scale.data(), offset.data());
    const float* table = gguf::code_table(t);
    for (size_t i = 0; i < got.size(); ++i) {
      const float level = table ? table[codes[i]] : static_cast<float>(codes[i]);
      ASSERT_EQ(scale[i] * level + offset[i], h.want[i]) << "value " << i;
    }
  }
}

TEST(GgmlBlocks, FloatTypesConvert) {
  const std::vector<float> x = {0.f, -1.5f, 3.14159f, 65504.f, 1e-6f, -2.5e-8f, 1e30f, -7.f};
  const int64_t n = static_cast<int64_t>(x.size());
  for (GgmlType t : {GgmlType::kF32, GgmlType::kF16, GgmlType::kBF16}) {
    SCOPED_TRACE(gguf::type_name(t));
    std::vector<uint8_t> bytes(gguf::tensor_bytes(t, x.size()));
    gguf::quantize_row(t, x.data(), bytes.data(), n);
    std::vector<float> back(x.size());
    gguf::dequantize_row(t, bytes.data(), back.data(), n);
    for (size_t i = 0; i < x.size(); ++i) {
      uint16_t h;
      std::memcpy(&h, bytes.data() + 2 * i, 2);
      const float want = t == GgmlType::kF32   ? x[i]
                         : t == GgmlType::kF16 ? f16_to_f32(f32_to_f16(x[i]))
                                               : bf16_to_f32(f32_to_bf16(x[i]));
      EXPECT_EQ(back[i], want) << i;
      if (t == GgmlType::kF16) {
        EXPECT_EQ(h, f32_to_f16(x[i]));
      }
    }
  }
  // An odd byte address works too (GGUF data need not be 2-byte aligned in a caller's buffer).
  std::vector<uint8_t> buf(2 * x.size() + 1);
  gguf::quantize_row(GgmlType::kF16, x.data(), buf.data() + 1, n);
  std::vector<float> back(x.size());
  gguf::dequantize_row(GgmlType::kF16, buf.data() + 1, back.data(), n);
  EXPECT_EQ(back[1], -1.5f);
}

// --- round trip ----------------------------------------------------------------------------------

// Per block: every value decodes within `step_fraction` of its grid step (scale[i], or for
// iq4_nl the table's largest gap times d), plus what rounding the scales to fp16 adds.
TEST(GgmlBlocks, RoundTripErrorIsWithinTheStep) {
  std::mt19937 rng(7);
  const int n = 4096;
  for (GgmlType t : kQuantTypes) {
    SCOPED_TRACE(gguf::type_name(t));
    const int bv = gguf::block_values(t), bb = gguf::block_bytes(t);
    double err2 = 0, sig2 = 0;
    for (int row = 0; row < 8; ++row) {
      const std::vector<float> x = gaussian_row(rng, n, row % 2 ? 0.02f : 1.f, row % 4 >= 2);
      std::vector<uint8_t> q(gguf::tensor_bytes(t, n));
      gguf::quantize_row(t, x.data(), q.data(), n);
      std::vector<float> y(n);
      gguf::dequantize_row(t, q.data(), y.data(), n);
      std::vector<float> scale(static_cast<size_t>(bv)), offset(static_cast<size_t>(bv));
      for (int b = 0; b < n / bv; ++b) {
        gguf::block_grid(t, q.data() + b * bb, scale.data(), offset.data());
        for (int i = 0; i < bv; ++i) {
          const size_t k = static_cast<size_t>(b * bv + i);
          const double e = std::fabs(static_cast<double>(x[k]) - y[k]);
          err2 += e * e;
          sig2 += static_cast<double>(x[k]) * x[k];
          const double s = std::fabs(scale[static_cast<size_t>(i)]);
          double bound;
          switch (t) {
            case GgmlType::kQ8_0:  // round to nearest: half a step, plus fp16 rounding of d
              bound = s * (0.5 + 128.0 / 2048);
              break;
            case GgmlType::kQ4_1:
            case GgmlType::kQ5_1:  // the min is the block minimum: half a step
              bound = s * (0.5 + 32.0 / 2048) + std::fabs(offset[static_cast<size_t>(i)]) / 2048;
              break;
            case GgmlType::kQ4_0:
            case GgmlType::kQ5_0:  // the side opposite the peak clamps one code short: one step
              bound = s * (1.0 + 32.0 / 2048);
              break;
            case GgmlType::kIQ4_NL:  // the widest gap of the table (24): codes use d before fp16
              bound = s * 24;
              break;
            default: {
              // k-quants: the codes are requantized for the stored scales, so each value decodes
              // to the nearest point of its grid: within half a step inside the grid's range, at
              // the nearer end outside it.
              const double lo0 = offset[static_cast<size_t>(i)];
              const double hi0 = lo0 + scale[static_cast<size_t>(i)] * (gguf::code_levels(t) - 1);
              const double lo = std::min(lo0, hi0), hi = std::max(lo0, hi0);
              const double outside = std::max({0.0, lo - x[k], x[k] - hi});
              bound = (outside > 0 ? outside : s * 0.5) + 1e-5 * (std::fabs(x[k]) + s);
              if (s == 0) bound = 1e30;  // a zero scale keeps the fit's codes
            }
          }
          ASSERT_LE(e, bound) << "block " << b << " value " << i << ": " << x[k] << " -> " << y[k];
        }
      }
    }
    const double rel = std::sqrt(err2 / sig2);
    // Relative RMS error of a Gaussian (with outliers) at these widths.
    const std::map<GgmlType, double> kMaxRel = {
        {GgmlType::kQ4_0, 0.18}, {GgmlType::kQ4_1, 0.12},  {GgmlType::kQ5_0, 0.085},
        {GgmlType::kQ5_1, 0.06}, {GgmlType::kQ8_0, 0.012}, {GgmlType::kQ4_K, 0.12},
        {GgmlType::kQ5_K, 0.06}, {GgmlType::kQ6_K, 0.03},  {GgmlType::kIQ4_NL, 0.13}};
    EXPECT_LT(rel, kMaxRel.at(t));
    std::printf("[ ggml     ] %-7s relative RMS error %.4f\n", gguf::type_name(t), rel);
  }
}

TEST(GgmlBlocks, AllZeroBlocksDecodeToZero) {
  for (GgmlType t : kQuantTypes) {
    SCOPED_TRACE(gguf::type_name(t));
    const int n = 256;
    std::vector<float> x(n, 0.f), y(n, 1.f);
    std::vector<uint8_t> q(gguf::tensor_bytes(t, n));
    gguf::quantize_row(t, x.data(), q.data(), n);
    gguf::dequantize_row(t, q.data(), y.data(), n);
    for (float v : y) ASSERT_EQ(v, 0.f);
  }
}

// --- the grid ------------------------------------------------------------------------------------

TEST(GgmlBlocks, GridReproducesTheDecoderAndSetCodesChangesOnlyCodes) {
  std::mt19937 rng(11);
  for (GgmlType t : kQuantTypes) {
    SCOPED_TRACE(gguf::type_name(t));
    const int bv = gguf::block_values(t), bb = gguf::block_bytes(t), n = 2048;
    const int levels = gguf::code_levels(t);
    const float* table = gguf::code_table(t);
    EXPECT_EQ(table != nullptr, t == GgmlType::kIQ4_NL);
    std::vector<uint8_t> blocks(gguf::tensor_bytes(t, n));
    // Rows the encoder fitted (with and without importance), then blocks of random bytes.
    for (int kind = 0; kind < 3; ++kind) {
      if (kind < 2) {
        const std::vector<float> x = gaussian_row(rng, n, 0.1f, true);
        std::vector<float> imp(n);
        std::uniform_real_distribution<float> u(0.f, 4.f);
        for (float& v : imp) v = u(rng);
        gguf::quantize_row(t, x.data(), blocks.data(), n, kind == 1 ? imp.data() : nullptr);
      } else {
        for (uint8_t& v : blocks) v = static_cast<uint8_t>(rng());
        std::uniform_real_distribution<float> u(-2.f, 2.f);
        for (int b = 0; b < n / bv; ++b)
          for (int at : f16_fields(t)) put_f16(blocks, static_cast<size_t>(b * bb + at), u(rng));
      }
      std::vector<float> y(n), scale(static_cast<size_t>(bv)), offset(static_cast<size_t>(bv));
      gguf::dequantize_row(t, blocks.data(), y.data(), n);
      std::vector<uint8_t> codes(static_cast<size_t>(bv)), other(static_cast<size_t>(bv)),
          back(static_cast<size_t>(bv));
      for (int b = 0; b < n / bv; ++b) {
        uint8_t* blk = blocks.data() + b * bb;
        const std::vector<uint8_t> orig(blk, blk + bb);
        gguf::get_codes(t, blk, codes.data());
        gguf::block_grid(t, blk, scale.data(), offset.data());
        for (int i = 0; i < bv; ++i) {
          ASSERT_LT(codes[static_cast<size_t>(i)], levels);
          const float level = table ? table[codes[static_cast<size_t>(i)]]
                                    : static_cast<float>(codes[static_cast<size_t>(i)]);
          const float g = scale[static_cast<size_t>(i)] * level + offset[static_cast<size_t>(i)];
          ASSERT_TRUE(same_float(g, y[static_cast<size_t>(b * bv + i)]))
              << "kind " << kind << " block " << b << " value " << i << ": grid " << g
              << ", decoder " << y[static_cast<size_t>(b * bv + i)];
        }
        // set_codes(get_codes) is the identity.
        gguf::set_codes(t, blk, codes.data());
        ASSERT_EQ(std::vector<uint8_t>(blk, blk + bb), orig) << "block " << b;
        // Other codes: the grid stays, the codes are the new ones, the decoder follows them; the
        // old codes restore every byte.
        for (uint8_t& c : other) c = static_cast<uint8_t>(static_cast<int>(rng() % levels));
        gguf::set_codes(t, blk, other.data());
        gguf::get_codes(t, blk, back.data());
        ASSERT_EQ(back, other);
        std::vector<float> s2(static_cast<size_t>(bv)), o2(static_cast<size_t>(bv)),
            y2(static_cast<size_t>(bv));
        gguf::block_grid(t, blk, s2.data(), o2.data());
        ASSERT_EQ(s2, scale);
        ASSERT_EQ(o2, offset);
        gguf::dequantize_row(t, blk, y2.data(), bv);
        for (int i = 0; i < bv; ++i) {
          const float level = table ? table[other[static_cast<size_t>(i)]]
                                    : static_cast<float>(other[static_cast<size_t>(i)]);
          ASSERT_TRUE(same_float(s2[static_cast<size_t>(i)] * level + o2[static_cast<size_t>(i)],
                                 y2[static_cast<size_t>(i)]));
        }
        gguf::set_codes(t, blk, codes.data());
        ASSERT_EQ(std::vector<uint8_t>(blk, blk + bb), orig) << "block " << b;
      }
    }
  }
}

// --- importance ----------------------------------------------------------------------------------

// The importance-weighted squared error Σ imp·(x − x̂)² of the weighted fit is not worse than the
// unweighted fit's, summed over many rows (per block it may be: the searches are heuristics).
TEST(GgmlBlocks, ImportanceLowersTheWeightedError) {
  std::mt19937 rng(5);
  const int n = 1024;
  for (GgmlType t : kQuantTypes) {
    SCOPED_TRACE(gguf::type_name(t));
    double with = 0, without = 0;
    for (int row = 0; row < 48; ++row) {
      const std::vector<float> x = gaussian_row(rng, n, 0.05f, row % 2 == 1);
      // Heavy-tailed importance (as activations' second moments are), some columns near zero.
      std::lognormal_distribution<float> ln(0.f, 1.5f);
      std::vector<float> imp(n);
      for (float& v : imp) v = ln(rng);
      std::vector<uint8_t> qa(gguf::tensor_bytes(t, n)), qb(qa.size());
      gguf::quantize_row(t, x.data(), qa.data(), n, imp.data());
      gguf::quantize_row(t, x.data(), qb.data(), n);
      std::vector<float> ya(n), yb(n);
      gguf::dequantize_row(t, qa.data(), ya.data(), n);
      gguf::dequantize_row(t, qb.data(), yb.data(), n);
      for (int i = 0; i < n; ++i) {
        const double ea = x[static_cast<size_t>(i)] - ya[static_cast<size_t>(i)];
        const double eb = x[static_cast<size_t>(i)] - yb[static_cast<size_t>(i)];
        with += imp[static_cast<size_t>(i)] * ea * ea;
        without += imp[static_cast<size_t>(i)] * eb * eb;
      }
    }
    if (t == GgmlType::kQ8_0)
      EXPECT_EQ(with, without);  // q8_0 has one encoder
    else
      EXPECT_LT(with, without);
    std::printf("[ ggml     ] %-7s weighted error with importance / without: %.4f\n",
                gguf::type_name(t), with / without);
  }
}

// A block whose importance is all zero is fitted as without importance (not to a zero scale).
TEST(GgmlBlocks, ZeroImportanceFallsBackToTheReferenceFit) {
  std::mt19937 rng(3);
  for (GgmlType t : kQuantTypes) {
    SCOPED_TRACE(gguf::type_name(t));
    const int n = 512;
    const std::vector<float> x = gaussian_row(rng, n, 1.f, false);
    const std::vector<float> zero(n, 0.f);
    std::vector<uint8_t> qa(gguf::tensor_bytes(t, n)), qb(qa.size());
    gguf::quantize_row(t, x.data(), qa.data(), n, zero.data());
    gguf::quantize_row(t, x.data(), qb.data(), n);
    EXPECT_EQ(qa, qb);
  }
}

// --- bad arguments -------------------------------------------------------------------------------

TEST(GgmlBlocks, BadArgumentsAreOneLineErrors) {
  using test::error_of;
  std::vector<float> x(64, 1.f), y(64);
  std::vector<uint8_t> q(1024);
  EXPECT_NE(error_of([&] {
              gguf::quantize_row(GgmlType::kQ4_0, x.data(), q.data(), 48);
            }).find("not a whole number of q4_0 blocks"),
            std::string::npos);
  EXPECT_NE(
      error_of([&] { gguf::dequantize_row(GgmlType::kQ4_K, q.data(), y.data(), 64); }).find("q4_k"),
      std::string::npos);
  EXPECT_NE(error_of([&] {
              gguf::dequantize_row(static_cast<GgmlType>(99), q.data(), y.data(), 32);
            }).find("unknown type 99"),
            std::string::npos);
  x[5] = std::nanf("");
  EXPECT_NE(error_of([&] {
              gguf::quantize_row(GgmlType::kQ8_0, x.data(), q.data(), 64);
            }).find("value 5 is nan"),
            std::string::npos);
  x[5] = 1.f;
  std::vector<float> imp(64, 1.f);
  imp[9] = -1.f;
  EXPECT_NE(error_of([&] {
              gguf::quantize_row(GgmlType::kQ4_0, x.data(), q.data(), 64, imp.data());
            }).find("importance 9"),
            std::string::npos);
  // Values whose scale would overflow fp16 (llama.cpp would store inf).
  std::vector<float> huge(256, 1e9f);
  huge[3] = -3e9f;
  EXPECT_NE(error_of([&] {
              gguf::quantize_row(GgmlType::kQ4_K, huge.data(), q.data(), 256);
            }).find("exceeds the range of q4_k's fp16 scales"),
            std::string::npos);
  EXPECT_NE(error_of([&] { gguf::code_levels(GgmlType::kF16); }).find("not a quantized"),
            std::string::npos);
  std::vector<uint8_t> codes(32, 16);
  EXPECT_NE(error_of([&] {
              gguf::set_codes(GgmlType::kQ4_0, q.data(), codes.data());
            }).find("outside q4_0's 0 .. 15"),
            std::string::npos);
}

// Decoding is fast enough for whole models: a q4_k tensor of 16 M values well under 2 s
// (100 M values in seconds).
TEST(GgmlBlocks, DecodesLargeTensorsQuickly) {
  const int64_t n = 16 << 20;
  std::vector<uint8_t> q(gguf::tensor_bytes(GgmlType::kQ4_K, static_cast<uint64_t>(n)));
  std::mt19937 rng(1);
  for (uint8_t& v : q) v = static_cast<uint8_t>(rng());
  for (size_t b = 0; b < q.size(); b += 144) {
    put_f16(q, b, 0.01f);
    put_f16(q, b + 2, 0.01f);
  }
  std::vector<float> y(static_cast<size_t>(n));
  const auto t0 = std::chrono::steady_clock::now();
  gguf::dequantize_row(GgmlType::kQ4_K, q.data(), y.data(), n);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[ ggml     ] q4_k decode: %.1f M values/s\n", static_cast<double>(n) / s / 1e6);
  EXPECT_LT(s, 2.0);
}

// --- against llama-quantize ----------------------------------------------------------------------

// A minimal GGUF v3 reader (test-only): the tensor directory of a file in memory.
struct GgufTensors {
  struct T {
    uint32_t type = 0;
    std::vector<uint64_t> ne;
    const uint8_t* data = nullptr;
  };
  std::string bytes;
  std::map<std::string, T> tensors;
};

GgufTensors read_gguf_tensors(const std::string& path) {
  GgufTensors g;
  g.bytes = test::read_all(path);
  const std::string& b = g.bytes;
  size_t at = 0;
  auto need = [&](uint64_t n) {
    if (n > b.size() || at + n > b.size()) throw Error(path + ": truncated");
  };
  auto u32 = [&] {
    need(4);
    uint32_t v;
    std::memcpy(&v, b.data() + at, 4);
    at += 4;
    return v;
  };
  auto u64 = [&] {
    need(8);
    uint64_t v;
    std::memcpy(&v, b.data() + at, 8);
    at += 8;
    return v;
  };
  auto str = [&] {
    const uint64_t n = u64();
    need(n);
    std::string s = b.substr(at, n);
    at += n;
    return s;
  };
  auto skip = [&](uint32_t type) {
    static const int kSize[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (type == 8) {
      str();
    } else if (type < 13 && type != 9) {
      need(static_cast<uint64_t>(kSize[type]));
      at += static_cast<size_t>(kSize[type]);
    } else {
      throw Error(path + ": unexpected metadata type");
    }
  };
  need(4);
  if (b.compare(0, 4, "GGUF") != 0) throw Error(path + ": not GGUF");
  at = 4;
  u32();  // version
  const uint64_t n_tensors = u64(), n_kv = u64();
  uint64_t alignment = 32;
  for (uint64_t i = 0; i < n_kv; ++i) {
    const std::string key = str();
    const uint32_t type = u32();
    if (type == 9) {
      const uint32_t et = u32();
      const uint64_t n = u64();
      for (uint64_t j = 0; j < n; ++j) skip(et);
    } else if (key == "general.alignment" && type == 4) {
      alignment = u32();
    } else {
      skip(type);
    }
  }
  std::vector<std::pair<std::string, uint64_t>> offsets;
  for (uint64_t i = 0; i < n_tensors; ++i) {
    const std::string name = str();
    GgufTensors::T t;
    const uint32_t nd = u32();
    for (uint32_t d = 0; d < nd; ++d) t.ne.push_back(u64());
    t.type = u32();
    offsets.emplace_back(name, u64());
    g.tensors[name] = t;
  }
  const uint64_t start = (at + alignment - 1) / alignment * alignment;
  for (const auto& [name, off] : offsets) {
    GgufTensors::T& t = g.tensors[name];
    uint64_t elements = 1;
    for (uint64_t e : t.ne) elements *= e;
    const uint64_t size = gguf::tensor_bytes(static_cast<GgmlType>(t.type), elements);
    if (start + off + size > b.size()) throw Error(path + ": tensor " + name + " out of the file");
    t.data = reinterpret_cast<const uint8_t*>(b.data()) + start + off;
  }
  return g;
}

// How lowbit's encoder compares with llama-quantize's output on the matrices of one type.
struct Comparison {
  int64_t tensors = 0, blocks = 0, identical = 0;
  double worst_steps = 0;  // where a block differs: |lowbit − llama.cpp| in grid steps
  double err_mine = 0,
         err_theirs = 0;  // Σ w·(x − x̂)² over the differing blocks (w = importance or 1)
};

// Quantizes the f32 rows of every tensor `theirs` holds in type t (with the tensor's importance
// vector when `imatrix` is given: then only tensors that have one) and compares block by block.
Comparison compare_to_llama(GgmlType t, const GgufTensors& src, const GgufTensors& theirs,
                            const std::map<std::string, std::vector<float>>* imatrix) {
  Comparison c;
  const int bv = gguf::block_values(t), bb = gguf::block_bytes(t);
  const float* table = gguf::code_table(t);
  const int levels = gguf::code_levels(t);
  auto level = [&](int code) { return table ? table[code] : static_cast<float>(code); };
  // The grid step at a code: the larger gap to its neighbouring levels (1 when uniform).
  auto gap = [&](int code) {
    float g = 0;
    if (code > 0) g = std::max(g, level(code) - level(code - 1));
    if (code + 1 < levels) g = std::max(g, level(code + 1) - level(code));
    return g;
  };
  const size_t nv = static_cast<size_t>(bv);
  std::vector<float> ya(nv), yb(nv), sa(nv), sb(nv), oa(nv), ob(nv);
  std::vector<uint8_t> ca(nv), cb(nv);
  for (const auto& [name, tt] : theirs.tensors) {
    if (tt.type != static_cast<uint32_t>(t)) continue;
    const float* imp = nullptr;
    if (imatrix) {
      const auto it = imatrix->find(name);
      if (it == imatrix->end()) continue;
      imp = it->second.data();
    }
    const GgufTensors::T& s = src.tensors.at(name);
    EXPECT_EQ(s.type, 0u) << name;
    const int64_t cols = static_cast<int64_t>(s.ne[0]);
    if (imp) {
      EXPECT_EQ(imatrix->at(name).size(), static_cast<size_t>(cols)) << name;
    }
    ++c.tensors;
    uint64_t elements = 1;
    for (uint64_t e : s.ne) elements *= e;
    const int64_t rows = static_cast<int64_t>(elements) / cols;
    const int64_t row_bytes = static_cast<int64_t>(gguf::tensor_bytes(t, s.ne[0]));
    std::vector<uint8_t> mine(static_cast<size_t>(row_bytes));
    for (int64_t r = 0; r < rows; ++r) {
      const float* x = reinterpret_cast<const float*>(s.data) + r * cols;
      gguf::quantize_row(t, x, mine.data(), cols, imp);
      const uint8_t* ref = tt.data + r * row_bytes;
      for (int64_t b = 0; b < cols / bv; ++b) {
        ++c.blocks;
        const uint8_t* pa = mine.data() + b * bb;
        const uint8_t* pb = ref + b * bb;
        if (std::memcmp(pa, pb, static_cast<size_t>(bb)) == 0) {
          ++c.identical;
          continue;
        }
        gguf::dequantize_row(t, pa, ya.data(), bv);
        gguf::dequantize_row(t, pb, yb.data(), bv);
        gguf::block_grid(t, pa, sa.data(), oa.data());
        gguf::block_grid(t, pb, sb.data(), ob.data());
        gguf::get_codes(t, pa, ca.data());
        gguf::get_codes(t, pb, cb.data());
        for (size_t i = 0; i < nv; ++i) {
          const int64_t k = b * bv + static_cast<int64_t>(i);
          const double xi = x[k], w = imp ? imp[k] : 1.0;
          c.err_mine += w * (xi - ya[i]) * (xi - ya[i]);
          c.err_theirs += w * (xi - yb[i]) * (xi - yb[i]);
          const double step =
              std::max(std::fabs(sa[i]) * gap(ca[i]), std::fabs(sb[i]) * gap(cb[i])) + 1e-12;
          c.worst_steps = std::max(c.worst_steps, std::fabs(ya[i] - yb[i]) / step);
        }
      }
    }
  }
  return c;
}

// An imatrix file of llama-imatrix b4748 (legacy binary format): per tensor, the mean squared
// activation of each input column (stored sums scaled by the number of calls, divided back here as
// llama-quantize does).
std::map<std::string, std::vector<float>> read_imatrix(const std::string& path) {
  const std::string b = test::read_all(path);
  size_t at = 0;
  auto i32 = [&] {
    if (at + 4 > b.size()) throw Error(path + ": truncated");
    int32_t v;
    std::memcpy(&v, b.data() + at, 4);
    at += 4;
    return v;
  };
  std::map<std::string, std::vector<float>> m;
  const int32_t n = i32();
  for (int32_t e = 0; e < n; ++e) {
    const int32_t len = i32();
    if (len < 0 || at + static_cast<size_t>(len) > b.size()) throw Error(path + ": bad name");
    const std::string name = b.substr(at, static_cast<size_t>(len));
    at += static_cast<size_t>(len);
    const int32_t ncall = i32(), nval = i32();
    if (nval < 0 || at + 4 * static_cast<size_t>(nval) > b.size()) throw Error(path + ": bad size");
    std::vector<float> v(static_cast<size_t>(nval));
    std::memcpy(v.data(), b.data() + at, 4 * v.size());
    at += 4 * v.size();
    if (ncall > 0)
      for (float& x : v) x /= static_cast<float>(ncall);
    m[name] = std::move(v);
  }
  return m;
}

struct LlamaCase {
  const char* llama_name;
  GgmlType type;
};
const LlamaCase kLlamaCases[] = {
    {"Q4_0", GgmlType::kQ4_0}, {"Q4_1", GgmlType::kQ4_1}, {"Q5_0", GgmlType::kQ5_0},
    {"Q5_1", GgmlType::kQ5_1}, {"Q8_0", GgmlType::kQ8_0}, {"Q4_K", GgmlType::kQ4_K},
    {"Q5_K", GgmlType::kQ5_K}, {"Q6_K", GgmlType::kQ6_K}, {"IQ4_NL", GgmlType::kIQ4_NL}};

void print_comparison(const char* what, const char* type, const Comparison& c) {
  std::printf(
      "[ ggml     ] %-6s %s: %lld/%lld blocks byte-identical (%.5f); differing blocks within "
      "%.3f steps, error lowbit %.4g, llama.cpp %.4g\n",
      type, what, static_cast<long long>(c.identical), static_cast<long long>(c.blocks),
      static_cast<double>(c.identical) / static_cast<double>(c.blocks), c.worst_steps, c.err_mine,
      c.err_theirs);
}

// llama-quantize --pure (no imatrix) on a real model exported to f32: every matrix in the type.
// quantize_row on the same f32 rows gives byte-identical blocks for (nearly) all blocks; where a
// block differs, its values are within one quantization step of llama.cpp's and the fit is not
// worse.
TEST(GgmlBlocks, EncodersMatchLlamaQuantize) {
  LOWBIT_SHARED_OR_SKIP(model, "models/llama-256");
  LOWBIT_LLAMACPP_OR_SKIP(bin_dir);
  const std::string bin = bin_dir + "/llama-quantize";
  test::TempDir dir("ggml_blocks");
  const std::string f32 = dir.sub("f32.gguf");
  const test::CliResult ex =
      test::run_cli("export gguf --model " + model + " --out " + f32 + " --type f32");
  ASSERT_EQ(ex.rc, 0) << ex.out;
  const GgufTensors src = read_gguf_tensors(f32);
  for (const LlamaCase& lc : kLlamaCases) {
    SCOPED_TRACE(lc.llama_name);
    const std::string out = dir.sub(std::string(lc.llama_name) + ".gguf");
    const test::CliResult q =
        test::run_cmd(bin + " --pure " + f32 + " " + out + " " + lc.llama_name + " 2");
    ASSERT_EQ(q.rc, 0) << q.out;
    const Comparison c = compare_to_llama(lc.type, src, read_gguf_tensors(out), nullptr);
    ASSERT_GT(c.tensors, 20) << "llama-quantize --pure left the matrices in another type";
    print_comparison("vs llama-quantize", lc.llama_name, c);
    EXPECT_GE(static_cast<double>(c.identical), 0.999 * static_cast<double>(c.blocks));
    EXPECT_LE(c.worst_steps, 1.0);
    EXPECT_LE(c.err_mine, c.err_theirs * 1.0001);
  }
}

// The same with an importance matrix (llama-imatrix on WikiText-2, llama-quantize --imatrix): the
// weighted fits are llama.cpp's too — (nearly) every block byte-identical on the matrices the
// imatrix covers, and where one differs the importance-weighted error is not worse.
TEST(GgmlBlocks, WeightedEncodersFollowLlamaQuantizeImatrix) {
  LOWBIT_SHARED_OR_SKIP(model, "models/llama-256");
  LOWBIT_LLAMACPP_OR_SKIP(bin);
  LOWBIT_SHARED_OR_SKIP(wiki, "data/wikitext-2/wiki.test.raw");
  test::TempDir dir("ggml_blocks_imatrix");
  const std::string f32 = dir.sub("f32.gguf"), imx = dir.sub("imatrix.dat");
  const test::CliResult ex =
      test::run_cli("export gguf --model " + model + " --out " + f32 + " --type f32");
  ASSERT_EQ(ex.rc, 0) << ex.out;
  const test::CliResult im = test::run_cmd(bin + "/llama-imatrix -m " + f32 + " -f " + wiki +
                                           " -c 128 --chunks 4 -t 2 -o " + imx);
  ASSERT_EQ(im.rc, 0) << im.out;
  const GgufTensors src = read_gguf_tensors(f32);
  const std::map<std::string, std::vector<float>> imatrix = read_imatrix(imx);
  ASSERT_GE(imatrix.size(), 28u);  // 7 matrices in each of the 4 layers
  for (const LlamaCase& lc : kLlamaCases) {
    SCOPED_TRACE(lc.llama_name);
    const std::string out = dir.sub(std::string(lc.llama_name) + ".gguf");
    const test::CliResult q = test::run_cmd(bin + "/llama-quantize --pure --imatrix " + imx + " " +
                                            f32 + " " + out + " " + lc.llama_name + " 2");
    ASSERT_EQ(q.rc, 0) << q.out;
    const Comparison c = compare_to_llama(lc.type, src, read_gguf_tensors(out), &imatrix);
    ASSERT_GE(c.tensors, 28);
    print_comparison("vs llama-quantize --imatrix", lc.llama_name, c);
    EXPECT_GE(static_cast<double>(c.identical), 0.99 * static_cast<double>(c.blocks));
    EXPECT_LE(c.err_mine, c.err_theirs * 1.01);
  }
}

}  // namespace
}  // namespace lowbit
