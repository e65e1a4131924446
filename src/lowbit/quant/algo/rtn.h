// Round-to-nearest (RTN) weight quantization, with an optional per-group clipping search that
// minimizes the importance-weighted squared error (llama.cpp's importance matrix idea).
#pragma once

#include <vector>

#include "lowbit/formats/scheme.h"

namespace lowbit {

struct RtnOptions {
  // Clip search: per group, try `clip_grid` ratios evenly spaced from 1.0 down to `clip_min`
  // (inclusive) and keep the one minimizing Σ_i imp_i (w_i − deq_i)². 0 or 1 = no search.
  int clip_grid = 0;
  float clip_min = 0.5f;
  // Per-input-channel importance [in] (mean of x_i² over calibration tokens); nullptr = all 1.
  const float* importance = nullptr;
  // Fixed per-group clip ratios [out, n_groups] (e.g. from AWQ's clip search); overrides the
  // search when set.
  const float* clip_ratios = nullptr;
  // How clip_ratios apply: false scales the group's min and max (GPTQ's search, fit_group); true
  // clamps |w| at ratio · max|w| (AWQ's, fit_group_clamped).
  bool clip_abs = false;
};

// Columns per group (group_size, or `in` for per-channel) and number of groups per row.
int group_columns(const QuantScheme& s, int in);
int group_count(const QuantScheme& s, int in);

// Quantizes W [out, in] (row-major) group by group with contiguous groups (g_idx[c] = c / gs).
QuantizedWeight quantize_rtn(const float* W, int out, int in, const QuantScheme& scheme,
                             const RtnOptions& opt = {});

// Σ_i imp_i (w_i − deq(q(w_i)))² of one group under `p` (imp = nullptr: all 1).
double group_error(const QuantScheme& s, const GroupParams& p, const float* w, const float* imp,
                   int n);

}  // namespace lowbit
