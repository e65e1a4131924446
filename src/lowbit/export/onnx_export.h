// `lowbit export onnx`: a decoder model (floating point or lowbit-quantized) written as an ONNX
// graph in Hugging Face optimum's text-generation-with-past layout, for ONNX Runtime and
// onnxruntime-genai:
//   inputs  input_ids [batch, sequence] int64, attention_mask [batch, past + sequence] int64,
//           position_ids [batch, sequence] int64,
//           past_key_values.N.key / .value [batch, kv_heads, past, head_dim] float
//   outputs logits [batch, sequence, vocab] float, present.N.key / .value
//           [batch, kv_heads, past + sequence, head_dim] float.
// One emitter driven by the model description (ModelConfig): RMSNorm or LayerNorm, RoPE
// (rotate-half or interleaved, partial, any frequency scaling: cos/sin tables are initializers)
// or learned positions, grouped-query / multi-query attention, gated or plain MLP, sequential,
// parallel or post-norm blocks, biases. Floating-point linears are MatMul with a [in, out]
// initializer; quantized ones com.microsoft::MatMulNBits (formats/matmul_nbits.h). Standard ONNX
// ops (opset 17) otherwise. Refused with a one-line error: ALiBi, QuaRot's online Hadamard, int8
// activations, weight types MatMulNBits cannot hold (nf4, fp4, fp8).
#pragma once

#include <cstdint>
#include <string>

namespace lowbit {

struct OnnxExportOptions {
  std::string model;  // what load_model accepts (FP or quantized)
  std::string out;    // the folder to write (model.onnx, genai_config.json, config, tokenizer)
  // Initializers in model.onnx.data: always when set, else when they exceed kAutoExternalBytes.
  bool external_data = false;
  bool force = false;    // replace a folder lowbit wrote before
  bool progress = true;  // a bar on stderr
};

// Initializer bytes beyond which external data is used without being asked for.
constexpr uint64_t kOnnxAutoExternalBytes = 1536ull << 20;

struct OnnxExportResult {
  std::string family;
  int quantized_linears = 0;  // MatMulNBits nodes
  int float_linears = 0;      // MatMul nodes with a weight initializer
  int nodes = 0;
  uint64_t initializer_bytes = 0;
  bool external_data = false;
  double seconds = 0;
};

OnnxExportResult export_onnx(const OnnxExportOptions& opt);

}  // namespace lowbit
