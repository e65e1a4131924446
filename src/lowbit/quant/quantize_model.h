// The quantization pipeline: a floating-point checkpoint in, a quantized model folder out,
// layer by layer so that only one decoder layer's weights are resident (docs/QUANTIZE.md).
//
//   embed calibration tokens -> for each decoder layer:
//     read its fp32 weights (streamed from the mapped input)
//     GPTQ / RTN (true-sequential): q,k,v <- attn_in; o <- attn_out; gate,up <- mlp_in;
//       down <- mlp_act; each group's inputs are computed with the linears before it already
//       quantized, and the layer's outputs (the next layer's inputs) with all of them quantized
//     AWQ: one FP pass collects every input point; scales searched and folded (q,k,v into the
//       attention norm, o into v when shapes allow, gate,up into the MLP norm, down into up);
//       clip search; RTN with the clip ratios; outputs recomputed with the quantized weights
//     write the layer's tensors as its own safetensors shard
//   -> embeddings, final norm, lm_head shard; config.json (+ quantization_config),
//      quantize_config.json, tokenizer files; the temp folder renamed into place.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lowbit/quant/algo/awq.h"
#include "lowbit/quant/algo/gptq.h"
#include "lowbit/quant/algo/rotation.h"
#include "lowbit/quant/algo/smoothquant.h"
#include "lowbit/quant/calibration.h"
#include "lowbit/quant/recipe.h"

namespace lowbit {

// kNone: no weight quantization, only the transformations asked for (SmoothQuant): writes the
// transformed floating-point model (its function unchanged), e.g. for other tools to quantize.
enum class QuantAlgo { kRtn, kGptq, kAwq, kNone };
QuantAlgo parse_quant_algo(const std::string& name);  // "rtn", "gptq", "awq", "none"
const char* quant_algo_name(QuantAlgo a);

struct QuantizeOptions {
  QuantAlgo algo = QuantAlgo::kRtn;
  Recipe recipe;
  // Storage layout: "gptq" writes every layer GPTQ can hold in the GPTQ layout and moves layers
  // it cannot hold (ragged shapes) to the nearest scheme it can (more bits, per-channel; listed in
  // the report); weight types GPTQ lacks (nf4, fp4, fp8, non-f16 scales) use the lowbit layout.
  // "lowbit" writes every layer in the lowbit layout with exactly the requested scheme.
  std::string format = "gptq";
  int gptq_version = 1;  // checkpoint_format of GPTQ layers: 1 ("gptq") or 2 ("gptq_v2")
  // RTN: per-group clip search (activation-weighted when calibrating).
  bool clip_search = false;
  GptqOptions gptq;
  AwqOptions awq;
  bool awq_clip = true;    // AWQ's weight-clipping search after the scales
  int sample_rows = 2048;  // rows of each input point kept for AWQ searches and the report
  bool calibrate = true;   // RTN may run without calibration data (GPTQ and AWQ need it)
  // The calibration forward pass and GPTQ's Hessians in bf16 arithmetic (weights and activations
  // rounded to bf16, fp32 sums) where the CPU has a bf16 dot product: about twice as fast;
  // false (`--calib-precision f32`) keeps fp32 throughout.
  bool calib_bf16 = true;
  CalibOptions calib;
  // Activation quantization (W8A8, W4A8; docs/QUANTIZE.md "Weight and activation"): the scheme
  // of every quantized linear's input, except modules matched by a skip_act glob (their input
  // stays float); nullopt: weight-only (the runtime's default activations). A static (tensor)
  // scheme's scale is calibrated per module from its inputs' range (abs-max).
  std::optional<ActScheme> act;
  std::vector<std::string> skip_act;
  // Per-layer activation schemes: (glob over module names, scheme), later rules win over `act`
  // for the quantized modules they match; --skip-act globs are applied after them.
  std::vector<std::pair<std::string, ActScheme>> act_rules;
  // How a static scale is calibrated from a module's inputs: "absmax" (the range over every
  // calibration token), "percentile" (the act_percentile-th percentile of |x|, or of x at both
  // ends for asymmetric, over the sampled rows), or "mse" (the clipping of the abs-max, 1 down to
  // 0.5 in steps of 1/40, with the least squared quantization error on the sampled rows).
  std::string act_calib = "absmax";
  double act_percentile = 99.99;
  // SmoothQuant before quantizing each layer (needs `act`, RTN or GPTQ): per-channel scales
  // folded into the preceding norm or linear (algo/smoothquant.h).
  std::optional<SmoothOptions> smooth;
  // Test models with activation outliers that compute the same function (docs/QUANTIZE.md):
  // `channels` input channels (the same ones in every layer, chosen by `seed`) of every input
  // fed by a norm, or by up_proj, are multiplied by `factor` where they are produced (norm gain and
  // bias, up_proj rows) and the columns of the linears reading them divided by it. Only with
  // QuantAlgo::kNone (the written model is the transformed FP model).
  struct Outliers {
    int channels = 4;
    float factor = 50.0f;
    uint64_t seed = 1;
  };
  std::optional<Outliers> outliers;
  // QuaRot-style rotations before anything else (smoothing, quantization): r1, the residual
  // stream (algo/rotation.h), folded into the weights; r2, each head's value outputs and the
  // matching o_proj inputs (folded); r4, an online Hadamard transform of down_proj's input
  // (ops/hadamard.h), its weight rotated to match and the transform recorded in config.json for
  // the runtime. The seed picks r1's and r2's matrices.
  struct Rotate {
    bool r1 = true, r2 = false, r4 = false;
    uint64_t seed = 0;
  };
  std::optional<Rotate> rotate;
  std::string tokenizer;  // overrides the tokenizer found beside the model
  bool force = false;     // replace an existing output folder lowbit wrote (io/output_dir.h)
  // Resume: a temp folder that an interrupted run with the same input and options left for this
  // output is taken over, and the decoder layers it finished are not quantized again (their
  // outputs are recomputed from the saved shards). false: such a folder is removed instead.
  bool resume = true;
  // Further files the command reads (a recipe, a JSON report path is checked separately): the
  // output folder may not be, contain or lie inside any of them, nor the model, tokenizer or
  // calibration text.
  std::vector<std::string> inputs;
};

struct LayerReport {
  std::string name;    // "model.layers.3.mlp.down_proj"
  std::string scheme;  // scheme_name(), or "fp" when kept in floating point
  std::string layout;  // "gptq", "lowbit" or "fp"
  std::string note;    // why a fallback / skip happened
  int64_t params = 0;
  double bits_per_weight = 0;  // stored bits (codes, scales, zeros, g_idx) per weight
  // ‖X(W − Q)ᵀ‖ / ‖XWᵀ‖ on sampled calibration inputs ("output"), or ‖W − Q‖ / ‖W‖ without
  // calibration ("weight").
  double rel_error = 0;
  std::string error_kind = "output";  // "output", "weight", or "" for floating-point layers
  double seconds = 0;
  float awq_alpha = -1;  // AWQ: the α chosen for the linear's input group
  std::string act;       // act_scheme_name() of its input ("fp" when float, "" weight-only)
  float act_scale = 0;   // static activations: the calibrated scale
  // max |x| over its input's channels on the calibration data, before and after smoothing
  // (-1: not measured), and the SmoothQuant α of its input group (-1: not smoothed).
  float act_absmax = -1, act_absmax_smoothed = -1, smooth_alpha = -1;
  // ‖XWᵀ − Q_a(X) Qᵀ‖ / ‖XWᵀ‖ with int8 activations as the runtime quantizes them (-1: float).
  double rel_error_act = -1;
};

struct QuantizeReport {
  std::string model, out, algo, format, calib_path;
  int nsamples = 0, seqlen = 0, n_layers = 0;
  int64_t calib_text_tokens = 0;
  std::vector<LayerReport> layers;
  std::vector<double> block_seconds;   // wall time per decoder layer (forward passes included)
  std::vector<std::string> fallbacks;  // "name: int4 g32 -> int8 per-channel (why)"
  std::vector<std::string> warnings;   // e.g. recipe patterns that matched nothing
  double seconds = 0;
  int64_t peak_rss_bytes = 0;
  double bits_per_weight = 0;  // over quantized linears
  int64_t quantized_params = 0, fp_params = 0;
  int64_t out_bytes = 0;  // size of the written folder
};

// Quantizes `model` into the folder `out`. `before_commit` (optional) sees the finished report
// before the folder is renamed into place: a failure there (the caller cannot print or save the
// report) leaves no output folder.
QuantizeReport quantize_model(const std::string& model, const std::string& out,
                              const QuantizeOptions& opt,
                              const std::function<void(const QuantizeReport&)>& before_commit = {});
// The temp folder's resume state of a run, and the layers it had finished (for tests/reports).
constexpr const char* kResumeStateName = "resume.json";

nlohmann::json report_json(const QuantizeReport& r);
// The human-readable table (one row per linear, then totals).
std::string report_text(const QuantizeReport& r);

}  // namespace lowbit
