// lowbit schemes that are ggml block types in disguise: int4 symmetric groups of 32·k columns are
// q4_0 blocks (d = the group's scale, the same codes), int4 asymmetric groups q4_1 (d = scale,
// m = −scale·zero, m rounded to f16), int8 symmetric q8_0. Writing those blocks from the stored
// codes keeps the dequantized weights (GGUF export without a second rounding).
#pragma once

#include <optional>
#include <vector>

#include "lowbit/formats/ggml_blocks.h"
#include "lowbit/formats/scheme.h"

namespace lowbit {

// The ggml type that holds w's codes exactly (kGgml: its own type), or nullopt. Needs plain
// group order (no act-order permutation), groups of a multiple of 32 columns (or per-channel
// with `in` a multiple of 32) and scales that f16 represents exactly.
std::optional<gguf::GgmlType> ggml_type_of(const QuantizedWeight& w);

// w's rows encoded as `t` (t == ggml_type_of(w)): out × tensor_bytes(t, in) bytes. `max_error`
// (optional): the largest |difference| between w.dequantize() and the blocks decoded.
std::vector<uint8_t> ggml_blocks_of(const QuantizedWeight& w, gguf::GgmlType t,
                                    double* max_error = nullptr);

}  // namespace lowbit
