// The runtime options shared by generate, eval and bench: how weights are held in memory and
// which kernels run them (docs/RUNTIME.md).
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "lowbit/model/load.h"
#include "lowbit/model/transformer.h"

namespace lowbit::cli {

struct RuntimeArgs {
  bool no_mmap = false;
  bool dequantize = false;         // reference path: quantized weights dequantized to fp32
  std::string fp_weights = "f32";  // unquantized linears: f32 | bf16
  std::string act = "auto";        // activations of the quantized kernels: auto | f32 | int8
  std::string isa;                 // cap the instruction set: avx512 | avx2 | scalar
  std::string kv = "f32";          // KV cache element type: f32 | f16 | bf16
};

void add_runtime_options(CLI::App* sub, RuntimeArgs* a);
// Validates the flags (Error naming the flag), applies the process-wide ones (activation mode,
// instruction set) and returns the load options.
RuntimeOptions apply_runtime_args(const RuntimeArgs& a);
// The forward pass options (--kv-cache); `model` names the model in its errors.
TransformerOptions transformer_options(const RuntimeArgs& a, const std::string& model = "model");

}  // namespace lowbit::cli
