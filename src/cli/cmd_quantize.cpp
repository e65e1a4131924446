// `lowbit quantize`: a floating-point checkpoint in, a quantized model folder out (GPTQ layout,
// lowbit extension where GPTQ cannot express the scheme), with a per-layer report.
#include <fmt/format.h>
#include <malloc.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cli/commands.h"
#include "cli/output.h"
#include "cli/validators.h"
#include "lowbit/io/output_dir.h"
#include "lowbit/io/safetensors.h"
#include "lowbit/model/load.h"
#include "lowbit/quant/quantize_model.h"
#include "lowbit/quant/quantize_onnx.h"
#include "lowbit/util/error.h"
#include "lowbit/util/threads.h"

namespace lowbit::cli {

namespace {

struct QuantizeArgs {
  std::string model, out, algo = "gptq", weight_type, scale_dtype = "f16", recipe, json_path;
  std::string calib_precision = "bf16";
  std::string act, act_granularity, smoothquant, alpha_criterion = "mean";
  bool act_asym = false, act_static = false, no_fold = false;
  std::vector<std::string> act_overrides;    // GLOB:SPEC
  std::vector<std::string> alpha_overrides;  // PATTERN:ALPHA
  std::string outliers;                      // N:FACTOR[:SEED]
  std::string rotate;
  bool format_given = false;
  uint64_t rotate_seed = 0;
  float alpha_min = 0.3f, alpha_max = 0.7f, alpha_step = 0.05f;
  int bits = 4, group_size = 128, threads = 0;
  bool sym = false, int4_clip = false, calib_given = false, bits_given = false,
       group_size_given = false;
  std::vector<std::string> overrides, skips;
  QuantizeOptions opt;
};

// The pipeline allocates and frees buffers of hundreds of MB per layer (Hessians, inverse
// Cholesky factors, activations). glibc serves those with fresh mmaps, and first-touch page
// faults then cost more than the GPTQ sweep itself on a VM. Keeping freed memory in the heap
// (no mmap, no trimming) lets the next layer reuse it; peak RSS is unchanged in practice since
// each layer needs the same sizes.
void keep_freed_memory() {
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_TOP_PAD, 64 << 20);
}

// --act, --act-granularity, --act-asym, --act-static, --skip-act, --smoothquant and its grid.
void set_act_options(const QuantizeArgs& a, QuantizeOptions& o) {
  if (a.act.empty() || a.act == "none") {
    if (!a.alpha_overrides.empty()) fail("--alpha-override", "needs --act int8 and --smoothquant");
    if (!a.act_overrides.empty()) fail("--act-override", "needs --act int8");
    if (a.no_fold) fail("--no-fold", "needs --act int8 and --smoothquant");
    for (const auto& [given, flag] :
         {std::pair{!a.act_granularity.empty(), "--act-granularity"},
          std::pair{a.act_asym, "--act-asym"}, std::pair{a.act_static, "--act-static"},
          std::pair{!o.skip_act.empty(), "--skip-act"},
          std::pair{!a.smoothquant.empty(), "--smoothquant"}}) {
      if (given) fail(flag, "needs --act int8 (activations are not quantized without it)");
    }
    return;
  }
  if (a.act != "int8") fail("--act", "unknown activation type '{}' (expected int8 or none)", a.act);
  ActScheme act;
  act.quantized = true;
  act.sym = !a.act_asym;
  act.granularity = a.act_granularity.empty()
                        ? ActGranularity::kToken
                        : parse_act_granularity("--act-granularity", a.act_granularity);
  if (a.act_static) {
    if (!a.act_granularity.empty() && act.granularity != ActGranularity::kTensor)
      fail("--act-static", "static activations are per tensor, not per {}", a.act_granularity);
    act.granularity = ActGranularity::kTensor;
  }
  if (act.granularity == ActGranularity::kBlock && !act.sym)
    fail("--act-asym", "block activations are symmetric only");
  o.act = act;
  for (const std::string& r : a.act_overrides) {
    const size_t colon = r.rfind(':');
    const std::string spec = colon == std::string::npos ? "" : r.substr(colon + 1);
    ActScheme s;
    s.quantized = spec != "fp";
    if (spec == "token" || spec == "token-asym") {
      s.granularity = ActGranularity::kToken;
    } else if (spec == "tensor" || spec == "tensor-asym") {
      s.granularity = ActGranularity::kTensor;
    } else if (spec == "block") {
      s.granularity = ActGranularity::kBlock;
    } else if (spec != "fp") {
      fail("--act-override", "expected GLOB:token|token-asym|tensor|tensor-asym|block|fp, got '{}'",
           r);
    }
    s.sym = spec.find("-asym") == std::string::npos;
    if (colon == 0) fail("--act-override", "expected GLOB:SCHEME, got '{}'", r);
    o.act_rules.emplace_back(r.substr(0, colon), s);
  }
  if (a.smoothquant.empty() && (a.no_fold || !a.alpha_overrides.empty()))
    fail(a.no_fold ? "--no-fold" : "--alpha-override", "needs --smoothquant");
  if (!a.smoothquant.empty()) {
    if (o.algo == QuantAlgo::kAwq)
      fail("--smoothquant", "combine SmoothQuant with --algo rtn or gptq (AWQ has its own scales)");
    SmoothOptions so;
    if (a.smoothquant == "auto") {
      so.alpha = -1.0f;
    } else {
      char* end = nullptr;
      so.alpha = std::strtof(a.smoothquant.c_str(), &end);
      if (end == a.smoothquant.c_str() || *end != '\0' || !(so.alpha >= 0.0f && so.alpha <= 1.0f))
        fail("--smoothquant", "'{}' is not auto or an alpha in [0, 1]", a.smoothquant);
    }
    so.alpha_min = a.alpha_min;
    so.alpha_max = a.alpha_max;
    so.alpha_step = a.alpha_step;
    if (!(so.alpha_step > 0.0f) || so.alpha_min > so.alpha_max)
      fail("--alpha-step", "the grid [{}, {}] step {} is empty", so.alpha_min, so.alpha_max,
           so.alpha_step);
    so.criterion = parse_alpha_criterion("--alpha-criterion", a.alpha_criterion);
    so.fold = !a.no_fold;
    for (const std::string& r : a.alpha_overrides) {
      const size_t colon = r.rfind(':');
      char* end = nullptr;
      const float alpha =
          colon == std::string::npos ? -1.0f : std::strtof(r.c_str() + colon + 1, &end);
      if (colon == std::string::npos || colon == 0 || end == r.c_str() + colon + 1 ||
          *end != '\0' || !(alpha >= 0.0f && alpha <= 1.0f))
        fail("--alpha-override", "expected PATTERN:ALPHA with ALPHA in [0, 1], got '{}'", r);
      so.alpha_rules.emplace_back(r.substr(0, colon), alpha);
    }
    o.smooth = so;
  }
}

int run_quantize(QuantizeArgs& a) {
  keep_freed_memory();
  set_num_threads(a.threads);
  QuantizeOptions& o = a.opt;
  o.algo = parse_quant_algo(a.algo);
  o.calib_bf16 = a.calib_precision == "bf16";
  QuantScheme s;
  if (!a.weight_type.empty()) {
    apply_weight_type("--weight-type", a.weight_type, &s);
    if (a.bits_given && (s.type != WeightType::kInt || s.bits != a.bits)) {
      fail("--bits", "{} contradicts --weight-type {}; give one of them", a.bits, a.weight_type);
    }
  } else {
    s.type = WeightType::kInt;
    s.bits = a.bits;
  }
  if (s.type != WeightType::kGgml) {
    s.group_size = a.group_size;
  } else if (a.group_size_given && a.group_size != s.group_size) {
    fail("--group-size", "{} blocks hold {} values; --group-size {} does not apply", a.weight_type,
         s.group_size, a.group_size);
  }
  s.sym = a.sym;
  s.int4_clip = a.int4_clip;
  s.scale_type = parse_scale_type("--scale-dtype", a.scale_dtype);
  validate_scheme("quantize", s);
  o.recipe = a.recipe.empty() ? Recipe{s, {}} : load_recipe_file(a.recipe, s);
  for (const std::string& p : a.skips) {
    RecipeRule r;
    r.pattern = p;
    r.skip = true;
    r.fields = nlohmann::json::object();
    o.recipe.rules.push_back(r);
  }
  for (const std::string& spec : a.overrides) o.recipe.rules.push_back(parse_override(spec));
  o.recipe.validate_rules();
  set_act_options(a, o);
  if (!a.rotate.empty()) {
    QuantizeOptions::Rotate r;
    r.r1 = false;
    r.seed = a.rotate_seed;
    size_t at = 0;
    while (at <= a.rotate.size()) {
      const size_t comma = std::min(a.rotate.find(',', at), a.rotate.size());
      const std::string part = a.rotate.substr(at, comma - at);
      if (part == "r1") {
        r.r1 = true;
      } else if (part == "r2") {
        r.r2 = true;
      } else if (part == "r4") {
        r.r4 = true;
      } else {
        fail("--rotate", "'{}': expected a list of r1, r2, r4 (e.g. r1,r2,r4)", a.rotate);
      }
      at = comma + 1;
    }
    o.rotate = r;
  }
  if (!a.outliers.empty()) {
    QuantizeOptions::Outliers out;
    unsigned long long seed = out.seed;
    char tail = 0;
    const int n =
        std::sscanf(a.outliers.c_str(), "%d:%f:%llu%c", &out.channels, &out.factor, &seed, &tail);
    if (n < 2 || n > 3) fail("--inject-outliers", "expected N:FACTOR[:SEED], got '{}'", a.outliers);
    out.seed = seed;
    o.outliers = out;
  }
  // RTN runs without calibration unless a text is named or something needs activations (static
  // activation scales, SmoothQuant).
  bool static_rule = false;
  for (const auto& [pattern, s] : o.act_rules)
    static_rule = static_rule || (s.quantized && s.granularity == ActGranularity::kTensor);
  o.calibrate = (o.algo != QuantAlgo::kRtn && o.algo != QuantAlgo::kNone) || a.calib_given ||
                o.smooth || static_rule || (o.act && o.act->granularity == ActGranularity::kTensor);
  o.inputs = {a.recipe};
  if (!a.json_path.empty()) {
    std::vector<std::string> inputs = model_input_paths(a.model, o.tokenizer);
    inputs.push_back(a.recipe);
    check_output_path(a.json_path, inputs, /*folder=*/false);
    if (path_within(a.json_path, a.out)) {
      fail(a.json_path, "lies inside the output folder {}; write the report elsewhere", a.out);
    }
  }
  // The report is printed and saved before the folder is renamed into place: if either fails,
  // no finished-looking output is left.
  bool json_written = false;
  // An ONNX model is written back as ONNX unless --format names a folder layout.
  const bool onnx_out =
      a.format_given ? o.format == "onnx" : !locate_model(a.model, o.tokenizer, false).onnx.empty();
  const auto run = onnx_out ? quantize_to_onnx : quantize_model;
  try {
    run(a.model, a.out, o, [&](const QuantizeReport& r) {
      out(report_text(r));
      out_flush();
      if (!a.json_path.empty()) {
        write_file_atomic(a.json_path, report_json(r).dump(2) + "\n");
        json_written = true;
      }
    });
  } catch (...) {
    if (json_written) std::remove(a.json_path.c_str());
    throw;
  }
  return 0;
}

}  // namespace

void add_quantize(CLI::App& app, Runner* run) {
  auto* sub = app.add_subcommand(
      "quantize", "Quantize a model's linear layers (RTN, GPTQ, AWQ) and save it in GPTQ format");
  auto a = std::make_shared<QuantizeArgs>();
  QuantizeOptions& o = a->opt;
  o.calib.seqlen = 0;  // auto: min(512, model context)
  sub->add_option("--model,-m", a->model,
                  "Input model (HF folder, llama2.c .bin, f32/f16/bf16 GGUF, or ONNX decoder "
                  "with config.json)")
      ->required();
  sub->add_option("--out,-o", a->out, "Output folder (must not exist unless --force)")->required();
  sub->add_option(
      "--algo", a->algo,
      "rtn|gptq|awq, or none (only the transformations, e.g. --smoothquant; default gptq)");
  sub->add_option("--bits", a->bits, "Integer weight bits: 2, 3, 4, 8 (default 4)")
      ->check(int_in(1, 64))
      ->each([a](const std::string&) { a->bits_given = true; });
  sub->add_option("--weight-type", a->weight_type,
                  "Instead of --bits: int2|int3|int4|int8|nf4|fp4|fp8_e4m3|fp8_e5m2, or a ggml "
                  "block type for GGUF export: q4_0|q4_1|q5_0|q5_1|q8_0|q4_k|q5_k|q6_k|iq4_nl");
  sub->add_option("--group-size,-g", a->group_size,
                  "Input columns per scale group; -1 = per output channel (default 128)")
      ->check(int_in(-1, 1 << 24))
      ->each([a](const std::string&) { a->group_size_given = true; });
  sub->add_flag("--sym", a->sym, "Symmetric integers (no zero points)");
  sub->add_flag("--int4-clip", a->int4_clip, "Symmetric codes in [-(2^(b-1)-1), 2^(b-1)-1]");
  sub->add_option("--scale-dtype", a->scale_dtype, "Scale dtype: f16 (GPTQ), f32, bf16, fp8_e4m3");
  sub->add_option("--recipe", a->recipe, "JSON recipe: default scheme + per-layer rules");
  sub->add_option("--override", a->overrides,
                  "Per-layer scheme, PATTERN:key=value,... e.g. '*.down_proj:bits=8' (repeatable)");
  sub->add_option("--skip", a->skips,
                  "Keep layers matching PATTERN in floating point (repeatable)");
  sub->add_option("--format", o.format,
                  "gptq (GPTQ layout, fallbacks for shapes it cannot hold) | lowbit (exact scheme "
                  "everywhere) | awq (AutoAWQ GEMM, int4) | compressed-tensors (W8A8 "
                  "int-quantized, as vLLM loads) | onnx (the input ONNX graph with MatMulNBits "
                  "linears; the default for an ONNX input)")
      ->each([a](const std::string&) { a->format_given = true; });
  sub->add_option("--gptq-version", o.gptq_version, "GPTQ zero-point convention: 1 (gptq) or 2")
      ->check(int_in(1, 2));
  sub->add_flag("--act-order", o.gptq.act_order, "GPTQ: quantize columns by descending Hessian");
  sub->add_flag("--static-groups", o.gptq.static_groups, "GPTQ act-order: fit groups up front");
  sub->add_option("--damp", o.gptq.percdamp, "GPTQ dampening, fraction of mean diag(H), in (0, 1]")
      ->check(real_in(1e-9, 1.0));
  sub->add_flag("--clip-search", o.clip_search, "RTN: per-group clipping search");
  sub->add_flag(
      "--no-awq-clip", [&o](int64_t) { o.awq_clip = false; },
      "AWQ: skip the weight-clipping search");
  sub->add_option("--calib", o.calib.text,
                  "Calibration text: wikitext2 (validation split) | tinystories (calib file) | "
                  "FILE (default wikitext2)")
      ->each([a](const std::string&) { a->calib_given = true; });
  sub->add_option("--nsamples", o.calib.nsamples, "Calibration windows (default 128)")
      ->check(int_in(1, 1 << 20));
  sub->add_option("--seqlen", o.calib.seqlen, "Tokens per window (default min(512, context))")
      ->check(int_in(1, 1 << 24));
  sub->add_option("--seed", o.calib.seed, "Seed of the window positions (default 0)")
      ->check(int_in(0, INT64_MAX));
  sub->add_option("--calib-precision", a->calib_precision,
                  "Calibration forward and GPTQ Hessians: bf16 (bf16 dot product where the CPU has "
                  "one, else f32) or f32 (default bf16)")
      ->check(CLI::IsMember({"bf16", "f32"}));
  sub->add_option("--sample-rows", o.sample_rows,
                  "Input rows kept per layer for AWQ searches and the error report (default 2048)")
      ->check(int_in(1, 1 << 24));
  sub->add_option("--act", a->act,
                  "Quantize the inputs of quantized linears: int8 (W8A8, W4A8) or none (default)")
      ->check(CLI::IsMember({"int8", "none"}));
  sub->add_option(
         "--act-granularity", a->act_granularity,
         "int8 activations: token (dynamic, per row; default), tensor (static, calibrated) "
         "or block (dynamic, per 32 columns)")
      ->check(CLI::IsMember({"token", "tensor", "block"}));
  sub->add_flag(
      "--act-static", a->act_static,
      "Static per-tensor activation scales from calibration (= --act-granularity tensor)");
  sub->add_flag("--act-asym", a->act_asym, "Asymmetric activations (a zero point per scale)");
  sub->add_option("--act-calib", o.act_calib,
                  "Static scales from: absmax (default), percentile (--act-percentile of |x|) or "
                  "mse (the clipping with the least squared error)")
      ->check(CLI::IsMember({"absmax", "percentile", "mse"}));
  sub->add_option("--act-percentile", o.act_percentile,
                  "Percentile for --act-calib percentile (default 99.99)")
      ->check(real_in(50.0, 100.0));
  sub->add_option("--act-override", a->act_overrides,
                  "Per-layer activations, GLOB:token|token-asym|tensor|tensor-asym|block|fp, e.g. "
                  "'*.mlp.down_proj:token' (repeatable; later rules win; --skip-act after them)");
  sub->add_option("--skip-act", o.skip_act,
                  "Keep the input of layers matching PATTERN in floating point, e.g. "
                  "'*.mlp.down_proj' (repeatable)");
  sub->add_option("--smoothquant", a->smoothquant,
                  "SmoothQuant before quantizing: ALPHA in [0, 1] or auto (grid search per layer)");
  sub->add_flag("--no-fold", a->no_fold,
                "SmoothQuant: keep each scale as an explicit division of the linear's input "
                "(stored as <module>.smooth_scale) instead of folding it into the preceding norm "
                "or linear");
  sub->add_option("--alpha-override", a->alpha_overrides,
                  "SmoothQuant: a fixed alpha for the input groups whose first linear matches "
                  "PATTERN, e.g. '*.mlp.gate_proj:0.8' (repeatable; later rules win)");
  sub->add_option("--alpha-min", a->alpha_min, "SmoothQuant auto: smallest alpha (default 0.3)")
      ->check(real_in(0.0, 1.0));
  sub->add_option("--alpha-max", a->alpha_max, "SmoothQuant auto: largest alpha (default 0.7)")
      ->check(real_in(0.0, 1.0));
  sub->add_option("--alpha-step", a->alpha_step, "SmoothQuant auto: grid step (default 0.05)")
      ->check(real_in(1e-6, 1.0));
  sub->add_option("--alpha-criterion", a->alpha_criterion,
                  "SmoothQuant auto: how linears sharing an input combine their alphas: mean "
                  "(default), min or max")
      ->check(CLI::IsMember({"mean", "min", "max"}));
  sub->add_option(
      "--rotate", a->rotate,
      "QuaRot rotations before quantizing, a list of: r1 (residual stream), r2 (per head, "
      "v -> o), r4 (online Hadamard before down_proj); e.g. r1,r2,r4");
  sub->add_option("--rotate-seed", a->rotate_seed, "Seed of the rotation (default 0)");
  sub->add_option(
      "--inject-outliers", a->outliers,
      "Test models (with --algo none): N:FACTOR[:SEED] multiplies N channels of every "
      "norm output (and up_proj output) by FACTOR and divides the columns reading them, "
      "so the function is unchanged but activations have outliers");
  sub->add_option("--tokenizer", o.tokenizer, "Tokenizer (default: the one beside the model)");
  sub->add_option("--json", a->json_path, "Also write the report as JSON to this file");
  sub->add_option("-t,--threads", a->threads, "Threads (default: all cores)")
      ->check(int_in(0, 1024));
  sub->add_flag(
      "--force", o.force,
      "Replace the output folder if it exists and lowbit wrote it (never another folder)");
  sub->add_flag(
      "--no-resume", [&o](int64_t) { o.resume = false; },
      "Start over instead of resuming the temp folder an interrupted run left for --out");
  sub->callback([run, a] { *run = [a] { return run_quantize(*a); }; });
}

}  // namespace lowbit::cli
