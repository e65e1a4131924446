// The scalar reference of every weight format: fit a group's scale/zero from its values, map a
// value to its code and back. Algorithms (RTN, GPTQ, AWQ) are built from these three functions.
#pragma once

#include <cstdint>

#include "lowbit/formats/scheme.h"

namespace lowbit {

// Scale (and zero) of one group of n values by min/max, the range first shrunk by `clip` (1 = no
// clipping; e.g. 0.9 keeps 90% of the range). The scale is rounded UP to s.scale_type
// (round_scale_up), so the rounding never clips the range: for kInt every value of the group then
// dequantizes within scale/2 (asym: the zero point's rounding; sym fullrange: GPTQ's +amax sits
// half a step above the top code).
GroupParams fit_group(const QuantScheme& s, const float* w, int n, float clip = 1.0f);
// AWQ's clipping: the group clamped to [-ratio·max|w|, ratio·max|w|] (a lopsided group keeps its
// short side whole), then fitted as fit_group(…, 1) would fit the clamped values. Non-integer
// types: fit_group(s, w, n, ratio).
GroupParams fit_group_clamped(const QuantScheme& s, const float* w, int n, float ratio);

// Nearest code of w, clamped to the format's range: kInt rounds w/scale to nearest, ties to even
// (as torch.round in the GPTQ reference), then adds zero and clamps to [0, maxq] ([1, maxq] for
// int4_clip); NF4 takes the nearest codebook entry; FP4/FP8 round to nearest even and saturate.
// All-zero groups get scale 1 (codebooks) or the GPTQ range [-1, 1] (kInt).
uint8_t quantize_value(const QuantScheme& s, const GroupParams& p, float w);
float dequantize_value(const QuantScheme& s, const GroupParams& p, uint8_t q);

// The 16 NormalFloat values of QLoRA (bitsandbytes), ascending: code 7 is 0, code 15 is 1.
extern const float kNF4Codebook[16];
// Value of a code of a codebook/float type at scale 1 (NF4, FP4, FP8); kInt: q itself.
float code_value(WeightType t, uint8_t q);
// Largest magnitude of the type's code values (1 for NF4, 6 for FP4, 448 / 57344 for FP8).
float code_max(WeightType t);

}  // namespace lowbit
