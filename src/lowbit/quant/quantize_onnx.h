// `lowbit quantize` of an ONNX decoder into an ONNX decoder (--format onnx, the default for an
// ONNX input): the model is quantized by the usual pipeline (quantize_model, lowbit layout, in a
// staging folder inside the output's temp folder), loaded back with its stored codes, and the
// source graph is written again with each quantized linear as a com.microsoft MatMulNBits node
// (export/onnx_quantized.h). The output folder holds the graph under the source's file name, the
// source's config.json (unchanged: the graph says what is quantized) and the tokenizer files;
// it appears whole or not at all.
//
// Refused up front, because MatMulNBits is a weight-only integer operator and the graph is kept
// as it was: weight types other than int (nf4, fp4, fp8), activation quantization, SmoothQuant,
// rotations, injected outliers and --algo none. Resume is not offered.
#pragma once

#include <functional>
#include <string>

#include "lowbit/quant/quantize_model.h"

namespace lowbit {

QuantizeReport quantize_to_onnx(
    const std::string& model, const std::string& out, const QuantizeOptions& opt,
    const std::function<void(const QuantizeReport&)>& before_commit = {});

}  // namespace lowbit
