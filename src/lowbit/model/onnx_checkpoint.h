// An ONNX decoder graph (torch.onnx / optimum export) seen as a Hugging Face checkpoint: its
// tensors under the parameter names the architecture table (arch.h) looks up, in the layout a
// safetensors checkpoint stores them, so the Hugging Face loader and the quantizer's WeightSource
// read it without knowing ONNX.
//
// How names are found (no family-specific code):
//  * an initializer named like a parameter ("model.layers.0.input_layernorm.weight",
//    "transformer.h.0.attn.c_attn.weight") is that parameter, stored as the checkpoint stores it;
//  * a linear's weight that torch.onnx constant-folded into an anonymous initializer
//    ("onnx::MatMul_1313", the nn.Linear weight transposed to [in, out]) is named by the node that
//    reads it: MatMul "/model/layers.0/self_attn/q_proj/MatMul" -> module
//    "model.layers.0.self_attn.q_proj", tensor "model.layers.0.self_attn.q_proj.weight",
//    transposed back to [out, in] (an owned copy). Gemm with transB = 1 reads [out, in] as is;
//  * a com.microsoft MatMulNBits node (a graph lowbit or another tool quantized) named the same way
//    is that module's quantized weight (formats/matmul_nbits.h), with the column order of a Gather
//    on its input (act-order) when one feeds it.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lowbit/formats/scheme.h"
#include "lowbit/io/onnx_model.h"
#include "lowbit/io/safetensors.h"

namespace lowbit {

// One linear of the graph: the node that multiplies by a weight initializer.
struct OnnxLinear {
  std::string module;        // "model.layers.0.self_attn.q_proj"
  int node = -1;             // index into graph.node()
  std::string op;            // "MatMul", "Gemm" or "MatMulNBits"
  std::string weight;        // the initializer read as B (MatMul/Gemm)
  bool b_is_out_in = false;  // B is [out, in] (Gemm transB = 1), else [in, out]
};

struct OnnxCheckpoint {
  std::shared_ptr<OnnxModel> model;
  // Checkpoint-named tensors (names of all initializers too, as they are).
  TensorStore store;
  // "<module>.weight" -> its quantized weight, for MatMulNBits nodes.
  std::map<std::string, QuantizedWeight> quantized;
  std::vector<OnnxLinear> linears;
  // The linear whose module is `module`, or null.
  const OnnxLinear* linear(const std::string& module) const;
};

// The module path a node's name (or first output's name) carries: "/a/b.0/c/MatMul" -> "a.b.0.c";
// "" when the name has no path.
std::string onnx_node_module(const OnnxNode& node);

// Maps `model`'s graph as above. Throws Error("<model path>: ...") on inconsistent MatMulNBits
// tensors or attributes, two nodes claiming one module, or a weight that is not 2-D.
OnnxCheckpoint read_onnx_checkpoint(std::shared_ptr<OnnxModel> model);

}  // namespace lowbit
