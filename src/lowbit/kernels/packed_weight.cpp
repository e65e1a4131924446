#include "lowbit/kernels/packed_weight.h"

#include <fmt/format.h>
#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <numeric>

#include "lowbit/formats/group_quant.h"
#include "lowbit/kernels/packed_matmul.h"
#include "lowbit/util/error.h"
#include "lowbit/util/half.h"

namespace lowbit::kernels {

AlignedBytes alloc_aligned(size_t bytes) {
  // Big buffers on 2 MiB boundaries with transparent huge pages requested before the first
  // touch: decode streams every weight once per token, and 4 KiB pages cost it TLB misses.
  const size_t huge = size_t{2} << 20;
  const size_t align = bytes >= huge / 2 ? huge : 64;
  const size_t n = std::max<size_t>(align, (bytes + align - 1) / align * align);
  void* p = std::aligned_alloc(align, n);
  if (p == nullptr) throw std::bad_alloc();
  if (align == huge) madvise(p, n, MADV_HUGEPAGE);
  std::memset(p, 0, n);
  AlignedBytes b;
  b.p = std::shared_ptr<uint8_t[]>(static_cast<uint8_t*>(p), [](uint8_t* q) { std::free(q); });
  b.size = bytes;
  return b;
}

namespace {

int round_up(int x, int m) { return (x + m - 1) / m * m; }

bool trivial_g_idx(const QuantizedWeight& w) {
  const int gs = w.scheme.group_size > 0 ? w.scheme.group_size : w.in;
  for (int i = 0; i < w.in; ++i) {
    if (w.g_idx[static_cast<size_t>(i)] != i / gs) return false;
  }
  return true;
}

// Columns sorted by group (stable); empty when the order is already the natural one.
std::vector<int32_t> column_order(const QuantizedWeight& w) {
  if (trivial_g_idx(w)) return {};
  std::vector<int32_t> perm(static_cast<size_t>(w.in));
  std::iota(perm.begin(), perm.end(), 0);
  std::stable_sort(perm.begin(), perm.end(), [&](int32_t a, int32_t b) {
    return w.g_idx[static_cast<size_t>(a)] < w.g_idx[static_cast<size_t>(b)];
  });
  return perm;
}

size_t byte_offset_4bit(int tile, size_t tile_stride, int r, int k) {
  const int b = k / kBlockCols, c = k % kBlockCols;
  const int o = c / 8, j = c % 8;
  return static_cast<size_t>(tile) * tile_stride + static_cast<size_t>(b) * 256 +
         static_cast<size_t>(o) * 64 + r * 4 + (j % 4);
}

size_t byte_offset_8bit(int tile, size_t tile_stride, int r, int k) {
  const int b = k / kBlockCols, c = k % kBlockCols;
  return static_cast<size_t>(tile) * tile_stride + static_cast<size_t>(b) * 512 +
         static_cast<size_t>(c / 4) * 64 + r * 4 + (c % 4);
}

}  // namespace

bool can_pack(const QuantizedWeight& w, std::string* why) {
  auto no = [&](std::string reason) {
    if (why) *why = std::move(reason);
    return false;
  };
  const QuantScheme& s = w.scheme;
  const bool int_ok =
      s.type == WeightType::kInt && s.bits <= 8 && s.bits != 5 && s.bits != 6 && s.bits != 7;
  if (!int_ok && s.type != WeightType::kNF4 && s.type != WeightType::kFP4) {
    return no(fmt::format("no kernel for {} weights", weight_type_name(s.type, s.bits)));
  }
  if (s.group_size > 0 && s.group_size < w.in && s.group_size % kBlockCols != 0) {
    return no(fmt::format("group size {} is not a multiple of {}", s.group_size, kBlockCols));
  }
  if (w.out <= 0 || w.in <= 0) return no("empty weight");
  if (!trivial_g_idx(w)) {
    const std::vector<int32_t> perm = column_order(w);
    for (int j = 0; j < w.in; ++j) {
      if (w.g_idx[static_cast<size_t>(perm[static_cast<size_t>(j)])] != j / s.group_size) {
        return no("act-order groups are not runs of group_size columns");
      }
    }
  }
  if (s.type == WeightType::kInt) {
    for (const GroupParams& p : w.params) {
      if (p.zero != std::nearbyint(p.zero) || p.zero < 0 || p.zero > 255) {
        return no("non-integer zero point");
      }
    }
  }
  return true;
}

PackedWeight pack_quantized(const QuantizedWeight& w) {
  const QuantScheme& s = w.scheme;
  PackedWeight p;
  p.kind = s.type != WeightType::kInt ? PackedKind::kLut4
           : s.bits == 8              ? PackedKind::kInt8
                                      : PackedKind::kInt4;
  p.out = w.out;
  p.in = w.in;
  p.k_pad = round_up(w.in, kBlockCols);
  p.n_tiles = (w.out + kTileRows - 1) / kTileRows;
  const bool per_channel = s.group_size <= 0 || s.group_size >= w.in;
  p.group = per_channel ? p.k_pad : s.group_size;
  p.n_groups = (p.k_pad + p.group - 1) / p.group;
  p.perm = column_order(w);
  for (int i = 0; i < 16; ++i) {
    p.lut[i] = s.type == WeightType::kInt ? static_cast<float>(i)
                                          : dequantize_value(s, GroupParams{1.0f, 0.0f}, i);
  }
  // Codes.
  const int nb = p.n_blocks();
  // Tiles back to back. (One cache line of padding after tiles a multiple of 4 KiB long, so that
  // the tiles decode streams side by side fall into different L1 sets, measured 5-10 % slower on
  // TinyLlama-1.1B W4 g32 decode: the streams are read once each, and the hardware prefetcher
  // prefers them page-aligned.)
  p.tile_stride = static_cast<size_t>(nb) * p.block_bytes();
  p.codes = alloc_aligned(static_cast<size_t>(p.n_tiles) * p.tile_stride);
  uint8_t* c = p.codes.data();
  for (int o = 0; o < w.out; ++o) {
    const int tile = o / kTileRows, r = o % kTileRows;
    const uint8_t* qrow = w.q.data() + static_cast<size_t>(o) * w.in;
    for (int k = 0; k < w.in; ++k) {
      const uint8_t q = qrow[p.perm.empty() ? k : p.perm[static_cast<size_t>(k)]];
      if (p.kind == PackedKind::kInt8) {
        c[byte_offset_8bit(tile, p.tile_stride, r, k)] = q;
      } else {
        const int shift = (k % 8) >= 4 ? 4 : 0;
        c[byte_offset_4bit(tile, p.tile_stride, r, k)] |= static_cast<uint8_t>((q & 15) << shift);
      }
    }
  }
  // Scales and zero points: [tile][group][16].
  const size_t n_params = static_cast<size_t>(p.n_tiles) * p.n_groups * kTileRows;
  bool f16_exact = true;
  bool same_zero = true;
  const float z0 = w.params.empty() ? 0.0f : w.params[0].zero;
  for (const GroupParams& g : w.params) {
    if (f16_to_f32(f32_to_f16(g.scale)) != g.scale) f16_exact = false;
    if (g.zero != z0) same_zero = false;
  }
  p.scales_f16 = f16_exact;
  p.scales = alloc_aligned(n_params * (f16_exact ? 2 : 4));
  p.has_zero = s.type == WeightType::kInt && !same_zero;
  p.zero_const = s.type == WeightType::kInt && same_zero ? static_cast<uint8_t>(z0) : 0;
  if (p.has_zero) p.zeros = alloc_aligned(n_params);
  for (int o = 0; o < w.out; ++o) {
    const int tile = o / kTileRows, r = o % kTileRows;
    for (int g = 0; g < p.n_groups; ++g) {
      const GroupParams& gp = w.params[static_cast<size_t>(o) * w.n_groups + g];
      const size_t at = (static_cast<size_t>(tile) * p.n_groups + g) * kTileRows + r;
      if (f16_exact) {
        reinterpret_cast<uint16_t*>(p.scales.data())[at] = f32_to_f16(gp.scale);
      } else {
        reinterpret_cast<float*>(p.scales.data())[at] = gp.scale;
      }
      if (p.has_zero) p.zeros.data()[at] = static_cast<uint8_t>(gp.zero);
    }
  }
  return p;
}

int bf16_row_stride(int in) { return (static_cast<int64_t>(in) * 2) % 4096 == 0 ? in + 32 : in; }

namespace {

PackedWeight bf16_shell(int out, int in) {
  PackedWeight p;
  p.kind = PackedKind::kBF16;
  p.out = out;
  p.in = in;
  p.k_pad = in;
  p.ld = bf16_row_stride(in);
  p.codes = alloc_aligned(static_cast<size_t>(out) * p.ld * 2);  // zeroed: the padding too
  return p;
}

}  // namespace

PackedWeight pack_bf16_raw(const void* w, int out, int in) {
  PackedWeight p = bf16_shell(out, in);
  const auto* src = static_cast<const uint8_t*>(w);
  for (int r = 0; r < out; ++r) {
    std::memcpy(p.codes.data() + static_cast<size_t>(r) * p.ld * 2,
                src + static_cast<size_t>(r) * in * 2, static_cast<size_t>(in) * 2);
  }
  return p;
}

PackedWeight pack_bf16(const float* w, int out, int in) {
  PackedWeight p = bf16_shell(out, in);
  uint16_t* d = reinterpret_cast<uint16_t*>(p.codes.data());
  for (int r = 0; r < out; ++r) {
    f32_to_bf16_n(w + static_cast<size_t>(r) * in, d + static_cast<size_t>(r) * p.ld,
                  static_cast<size_t>(in));
  }
  return p;
}

int PackedWeight::code(int r, int k) const {
  const int tile = r / kTileRows, rr = r % kTileRows;
  if (kind == PackedKind::kInt8) return codes.data()[byte_offset_8bit(tile, tile_stride, rr, k)];
  const uint8_t b = codes.data()[byte_offset_4bit(tile, tile_stride, rr, k)];
  return (k % 8) >= 4 ? b >> 4 : b & 15;
}

float PackedWeight::scale(int r, int g) const {
  const size_t at = (static_cast<size_t>(r / kTileRows) * n_groups + g) * kTileRows + r % kTileRows;
  return scales_f16 ? f16_to_f32(reinterpret_cast<const uint16_t*>(scales.data())[at])
                    : reinterpret_cast<const float*>(scales.data())[at];
}

int PackedWeight::zero(int r, int g) const {
  if (!has_zero) return zero_const;
  return zeros
      .data()[(static_cast<size_t>(r / kTileRows) * n_groups + g) * kTileRows + r % kTileRows];
}

size_t PackedWeight::bytes() const {
  if (kind == PackedKind::kBF16) return static_cast<size_t>(out) * in * 2;
  const size_t n_params = static_cast<size_t>(n_tiles) * n_groups * kTileRows;
  return static_cast<size_t>(n_tiles) * n_blocks() * block_bytes() +
         n_params * (scales_f16 ? 2 : 4) + (has_zero ? n_params : 0);
}

std::vector<float> PackedWeight::dequantize() const {
  std::vector<float> w(static_cast<size_t>(out) * in);
  for (int r = 0; r < out; ++r) {
    float* row = w.data() + static_cast<size_t>(r) * in;
    if (kind == PackedKind::kBF16) {
      const uint16_t* src =
          reinterpret_cast<const uint16_t*>(codes.data()) + static_cast<size_t>(r) * ld;
      for (int k = 0; k < in; ++k) row[k] = bf16_to_f32(src[k]);
      continue;
    }
    for (int k = 0; k < in; ++k) {
      const int g = k / group;
      const int q = code(r, k);
      const float v = kind == PackedKind::kLut4 ? lut[q] : static_cast<float>(q - zero(r, g));
      row[perm.empty() ? k : perm[static_cast<size_t>(k)]] = scale(r, g) * v;
    }
  }
  return w;
}

std::string PackedWeight::describe() const {
  if (kind == PackedKind::kBF16) return "bf16";
  const char* name = kind == PackedKind::kInt8   ? "int8"
                     : kind == PackedKind::kInt4 ? "int4"
                                                 : "lut4";
  const std::string g = n_groups == 1 ? "per-channel" : fmt::format("g{}", group);
  return fmt::format("{} {} ({} scales{}{})", name, g, scales_f16 ? "f16" : "f32",
                     has_zero ? ", zeros" : "", perm.empty() ? "" : ", act-order");
}

void set_act_scheme(PackedWeight& w, const ActScheme& a, const std::string& where) {
  validate_act_scheme(where, a);
  if (a.quantized && w.kind != PackedKind::kInt4 && w.kind != PackedKind::kInt8) {
    fail(where, "int8 activations need integer weights (this linear is {})", w.describe());
  }
  w.act = a;
  w.row_sums.clear();
  if (!a.quantized || a.sym) return;
  w.row_sums.assign(static_cast<size_t>(w.out), 0.0f);
  std::vector<float> tile(static_cast<size_t>(kTileRows) * w.k_pad);
  for (int t = 0; t < w.n_tiles; ++t) {
    dequantize_tiles(w, t, t + 1, tile.data());
    for (int r = 0; r < kTileRows && t * kTileRows + r < w.out; ++r) {
      double s = 0;  // packed columns [0, in) are the real ones, in any order
      for (int k = 0; k < w.in; ++k) s += tile[static_cast<size_t>(r) * w.k_pad + k];
      w.row_sums[static_cast<size_t>(t * kTileRows + r)] = static_cast<float>(s);
    }
  }
}

}  // namespace lowbit::kernels
