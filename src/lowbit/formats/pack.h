// Exact bit packing of quantized codes.
//
// Both layouts are little-endian bit streams: code k of a stream occupies bits [k·b, k·b + b) of
// the stream, low bits first, and a code may straddle two words (3 bits: 32 codes fill 3 int32
// words; code 10 has its low 2 bits in bits 30..31 of word 0 and its high bit in bit 0 of word 1,
// as AutoGPTQ / GPTQ-for-LLaMa pack 3-bit weights).
//  - GPTQ qweight: int32 [in·b/32, out]; each OUTPUT column holds the stream of its in codes along
//    the input features (word (r, o) = stream bits [32r, 32r + 32) of column o).
//  - GPTQ qzeros: int32 [n_groups, out·b/32]; each group row holds the stream of its out zeros.
//  - lowbit rows: uint8 [rows, ceil(cols·b/8)]; each row is its own stream, padded with zero bits.
//  - AutoAWQ GEMM (4 bits only): int32 [rows, cols/8] packed along the OUTPUT features; word j of a
//    row holds columns 8j..8j+7 interleaved: nibble i (bits 4i..4i+3) is column 8j + kAwqOrder[i].
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "lowbit/formats/scheme.h"

namespace lowbit {

// codes [out, in] -> qweight words [in*bits/32, out]. Requires in*bits % 32 == 0.
std::vector<int32_t> pack_gptq_qweight(const uint8_t* codes, int out, int in, int bits);
std::vector<uint8_t> unpack_gptq_qweight(const int32_t* qweight, int out, int in, int bits);

// zeros [n_groups, out] -> qzeros words [n_groups, out*bits/32]. Requires out*bits % 32 == 0.
std::vector<int32_t> pack_gptq_qzeros(const uint8_t* zeros, int n_groups, int out, int bits);
std::vector<uint8_t> unpack_gptq_qzeros(const int32_t* qzeros, int n_groups, int out, int bits);

// codes [rows, cols] -> bytes [rows, packed_row_bytes(cols, bits)], any cols (ragged allowed).
size_t packed_row_bytes(int cols, int bits);
std::vector<uint8_t> pack_rows(const uint8_t* codes, int rows, int cols, int bits);
std::vector<uint8_t> unpack_rows(const uint8_t* packed, int rows, int cols, int bits);

// AutoAWQ GEMM's interleave: nibble i of a word holds column kAwqOrder[i] of its 8 columns.
inline constexpr std::array<int, 8> kAwqOrder = {0, 2, 4, 6, 1, 3, 5, 7};

// 4-bit codes [rows, cols] -> words [rows, cols/8] in AutoAWQ GEMM order (qweight: rows = in,
// cols = out, i.e. the codes transposed; qzeros: rows = n_groups). Requires cols % 8 == 0 and
// codes < 16.
std::vector<int32_t> pack_awq(const uint8_t* codes, int rows, int cols);
std::vector<uint8_t> unpack_awq(const int32_t* words, int rows, int cols);

// Whether AutoAWQ's GEMM layout (as HF transformers and vLLM load it) holds a [out, in] weight in
// scheme s: int4 with f16 scales, out a multiple of 8, a group size dividing in (or per-channel).
// `why` (optional) gets the reason when not.
bool awq_layout_fits(const QuantScheme& s, int out, int in, std::string* why = nullptr);

// Whether the GPTQ layout (as HF transformers and vLLM load it) can hold a [out, in] weight in
// scheme s exactly: kInt with 2/3/4/8 bits, f16 scales, in·bits and out·bits multiples of 32, and
// a group size dividing in (or per-channel).
bool gptq_layout_fits(const QuantScheme& s, int out, int in);

// The GPTQ-expressible scheme nearest to s for a [out, in] weight, tried in this order: s itself;
// s with f16 scales; the same bits per-channel; 8 bits with s's group size; 8 bits per-channel.
// nullopt when none fits (the layer then stays floating point, or uses the lowbit layout).
std::optional<QuantScheme> nearest_fitting_scheme(const QuantScheme& s, int out, int in);

}  // namespace lowbit
