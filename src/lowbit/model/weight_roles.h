// Where each tensor role (arch.h) lives in ModelWeights: the loaders place tensors through it and
// the ONNX writer reads them back through it.
#pragma once

#include <vector>

#include "lowbit/model/arch.h"
#include "lowbit/model/weights.h"

namespace lowbit {

// The norm a norm weight or bias role fills (null for other roles).
Norm* norm_of(TensorRole r, ModelWeights* w, int layer);
bool is_norm_bias(TensorRole r);
// The linear(s) a weight or bias role fills: one, or the parts of a fused tensor (fused_rows).
std::vector<Linear*> linears_of(TensorRole r, ModelWeights* w, int layer);
bool is_fused(TensorRole r);

}  // namespace lowbit
