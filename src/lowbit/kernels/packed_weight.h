// The compute layout of a linear weight: how the kernels want a weight laid out in memory,
// chosen for the SIMD loops and kept separate from the storage formats
// (formats/checkpoint_layout.h) that checkpoints use. Built once at load ("repacking").
//
// Integer and 4-bit-code weights are cut into tiles of 16 output rows. Within a tile, each block
// of 32 input columns is stored contiguously, rows interleaved so that one 64-byte vector holds
// the same few columns of all 16 rows:
//  - kInt4 / kLut4 (4-bit codes): 4 vectors per block; vector o, lane r (bytes 4r..4r+3), byte j
//    holds column 8o+j of row r in its low nibble and column 8o+4+j in its high nibble;
//  - kInt8 (8-bit codes): 8 vectors per block; vector o, lane r, byte j holds column 4o+j.
// So one 32-bit lane holds 4 consecutive columns of one row: exactly the operand of the VNNI
// instruction vpdpbusd (u8 × s8, 4 products summed into an int32 lane per row).
// Scales (and zero points) are per (tile, group, row): [tile][group][16].
// Dequantized value: kInt4/kInt8: scale · (q − zero); kLut4: scale · lut[q].
// kBF16 (unquantized weights kept in bf16) is row-major [out][ld]: ld = in, or in + 32 when rows
// would be a multiple of 4 KiB apart (the rows a kernel reads side by side would then all fall
// into the same L1 cache set and evict each other; bf16_row_stride).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lowbit/formats/act_scheme.h"
#include "lowbit/formats/scheme.h"

namespace lowbit::kernels {

enum class PackedKind : uint8_t { kInt4, kInt8, kLut4, kBF16 };

constexpr int kTileRows = 16;   // output rows per tile (one 512-bit vector of int32/fp32)
constexpr int kBlockCols = 32;  // input columns per block (activation quantization block)

// 64-byte aligned bytes.
struct AlignedBytes {
  std::shared_ptr<uint8_t[]> p;
  size_t size = 0;
  uint8_t* data() const { return p.get(); }
};
AlignedBytes alloc_aligned(size_t bytes);

struct PackedWeight {
  PackedKind kind = PackedKind::kInt4;
  int out = 0, in = 0;  // logical shape [out, in]
  int k_pad = 0;        // in rounded up to kBlockCols (the padded columns hold zero codes)
  int ld = 0;           // kBF16: elements from one row to the next (bf16_row_stride(in))
  int n_tiles = 0;      // ceil(out / kTileRows)
  int group = 0;        // input columns per group (a multiple of kBlockCols; k_pad = per-channel)
  int n_groups = 0;     // k_pad / group
  // Column order: empty, or packed column j holds original column perm[j] (GPTQ act-order
  // checkpoints, whose groups are not contiguous in the original order). The activations are
  // gathered in this order before the multiply.
  std::vector<int32_t> perm;
  AlignedBytes codes;      // quantized kinds: [tile][block][block bytes]; kBF16: [out][ld] bf16
  AlignedBytes scales;     // [tile][group][16], f16 when scales_f16 else f32
  bool scales_f16 = true;  // every scale was exactly representable in f16
  AlignedBytes zeros;      // u8 [tile][group][16]; empty when has_zero is false
  bool has_zero = false;   // false: the zero point is zero_const for every group
  uint8_t zero_const = 0;  // kInt4 sym: 8, kInt8 sym: 128, kLut4: 0
  float lut[16] = {};      // kLut4 code values (nf4, fp4); kInt4: 0..15
  // How this linear's input is quantized (formats/act_scheme.h); nullopt: the process default
  // (kernels::act_mode(), int8 per block for integer weights). Set with set_act_scheme.
  std::optional<ActScheme> act;
  // Σ over the real columns of each dequantized row [out]: the m · Σ_k W_k term of asymmetric
  // activations (x ≈ s·q + m). Filled by set_act_scheme when the scheme is asymmetric.
  std::vector<float> row_sums;

  // Bytes from one tile's codes to the next (n_blocks · block_bytes; see pack_quantized).
  size_t tile_stride = 0;
  int n_blocks() const { return k_pad / kBlockCols; }
  // Bytes of one block of one tile in `codes`: 256 (4-bit) or 512 (8-bit).
  int block_bytes() const { return kind == PackedKind::kInt8 ? 512 : 256; }
  // Code of row r, packed column k (reference accessor, slow).
  int code(int r, int k) const;
  float scale(int r, int g) const;  // of row r, group g
  int zero(int r, int g) const;
  // Bytes the kernels read per multiply (codes + scales + zeros, or the bf16 matrix).
  size_t bytes() const;
  // Dequantized weight in the original column order [out, in] (reference, slow).
  std::vector<float> dequantize() const;
  std::string describe() const;  // e.g. "int4 g128 (f16 scales, zeros)"
};

// Whether `w` has a fast compute layout: kInt with ≤ 8 bits (2/3-bit codes are held as 4-bit),
// NF4, FP4; groups a multiple of 32 columns or per-channel; an act-order g_idx only when every
// group is a contiguous run of group_size columns after sorting; integer zero points.
// When false, `why` says why (the runtime then keeps a dequantized fp32 copy).
bool can_pack(const QuantizedWeight& w, std::string* why = nullptr);
// Repacks a quantized weight into the compute layout. Precondition: can_pack(w).
PackedWeight pack_quantized(const QuantizedWeight& w);
// Sets w.act (and the row sums an asymmetric scheme needs). Throws Error("<where>: ...") for
// weights whose kernels have no int8-activation path (nf4/fp4 codes, bf16) when a is quantized.
void set_act_scheme(PackedWeight& w, const ActScheme& a, const std::string& where);
// Row stride (elements) of bf16 matrices with `in` columns: `in`, padded by 32 when 2·in is a
// multiple of 4096 bytes.
int bf16_row_stride(int in);
// bf16 copy of an fp32 [out, in] weight (round to nearest even), or of bf16 data as is.
PackedWeight pack_bf16(const float* w, int out, int in);
PackedWeight pack_bf16_raw(const void* w, int out, int in);  // bf16 bytes, any alignment

}  // namespace lowbit::kernels
