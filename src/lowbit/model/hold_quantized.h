// How a loader holds a quantized linear weight (shared by the Hugging Face and GGUF loaders):
// repacked into the kernels' compute layout when RuntimeOptions::repack and the kernels can run
// it, else dequantized to fp32; its codes and scales kept as stored with keep_quantized.
#pragma once

#include <optional>
#include <string>

#include "lowbit/formats/act_scheme.h"
#include "lowbit/formats/scheme.h"
#include "lowbit/model/weights.h"

namespace lowbit {

// `act`: the module's activation scheme (int8 activations need the kernel layout). Throws
// Error("<where>: ...").
void set_quantized(Linear* lin, const QuantizedWeight& q, bool repack, bool keep, ModelWeights* w,
                   const std::optional<ActScheme>& act, const std::string& where);

}  // namespace lowbit
