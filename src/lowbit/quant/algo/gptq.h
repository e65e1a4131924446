// GPTQ (Frantar, Ashkboos, Hoefler, Alistarh, "GPTQ: Accurate Post-Training Quantization for
// Generative Pre-trained Transformers", ICLR 2023): quantizes a linear layer's columns one by one,
// spreading each column's rounding error over the not-yet-quantized columns through the inverse
// Hessian of the layer's calibration inputs. See docs/QUANT_ALGORITHMS.md.
#pragma once

#include <vector>

#include "lowbit/formats/scheme.h"

namespace lowbit {

struct GptqOptions {
  float percdamp = 0.01f;      // λ = percdamp · mean(diag H) added to diag(H)
  int block_size = 128;        // columns per lazy batch update
  bool act_order = false;      // desc_act: sweep columns by descending diag(H)
  bool static_groups = false;  // act_order: fit every group's params up front on the original W
};

struct GptqStats {
  double error = 0;      // ½ Σ (w − q)² / [H⁻¹]_jj², the "error" the GPTQ reference prints
  float damp = 0;        // the λ actually used (raised ×10 per failed Cholesky, at most 4 times)
  int dead_columns = 0;  // columns with diag(H) = 0 (never activated): quantized as 0
};

// W [out, in] row-major, H [in, in] (symmetric, e.g. HessianAccumulator::hessian()).
QuantizedWeight quantize_gptq(const float* W, int out, int in, std::vector<float> H,
                              const QuantScheme& scheme, const GptqOptions& opt = {},
                              GptqStats* stats = nullptr);

// Upper Cholesky factor U of (H + λI)⁻¹ (so (H + λI)⁻¹ = UᵀU), computed in double with LAPACK
// (dpotrf and dtrtri of the index-reversed matrix); the lower triangle is zero. Returns λ through
// `damp`.
std::vector<float> inverse_hessian_cholesky(const std::vector<float>& H, int n, float percdamp,
                                            float* damp);

}  // namespace lowbit
