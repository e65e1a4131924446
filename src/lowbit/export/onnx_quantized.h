// The ONNX graph a model was read from, written back with its quantized linears as ONNX Runtime's
// com.microsoft MatMulNBits (formats/matmul_nbits.h): the same nodes, inputs and outputs, so the
// runtime that ran the float graph runs the quantized one unchanged.
//
// For each linear weight role (arch.h) whose Linear holds its stored codes (Linear::quant, a model
// loaded with RuntimeOptions::keep_quantized), the graph's node reading that module's weight
// (model/onnx_checkpoint.h) is replaced:
//   MatMul(A, W)        -> MatMulNBits(A, B, scales[, zero_points])          (same output)
//   Gemm(A, W, C)       -> MatMulNBits(A, B, scales[, zero_points]) ; Add(·, C)
// with a Gather of A's columns first when the weight's act-order needs one (perm). Fused modules
// (GPT-2's c_attn) are stacked back from their parts. The float weight initializers no node reads
// any more are dropped; the com.microsoft opset (version 1) is imported. Floating-point tensors
// the quantization changed (AWQ's scales folded into norms and biases) are written over their
// initializers; everything else in the file stays as it was (export/onnx_edit.h).
#pragma once

#include <string>

#include "lowbit/model/weights.h"

namespace lowbit {

struct OnnxWriteSummary {
  int replaced = 0;          // linears written as MatMulNBits
  int rewritten_floats = 0;  // float initializers given new values
  int dropped = 0;           // initializers removed
};

// Writes `source_onnx` (the graph `q` was quantized from, config.json beside it) with q's
// quantized linears to `out_path` (temp file + rename). Throws Error naming the module for a
// scheme MatMulNBits cannot hold (nf4, fp4, fp8, a group size without a power-of-two divisor
// ≥ 16) and for a linear the graph has no node for.
OnnxWriteSummary write_quantized_onnx(const std::string& source_onnx, const ModelWeights& q,
                                      const std::string& out_path);

}  // namespace lowbit
