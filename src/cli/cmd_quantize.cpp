// `lowbit quantize`: a floating-point checkpoint in, a quantized model folder out (GPTQ layout,
// lowbit extension where GPTQ cannot express the scheme), with a per-layer report.
#include <fmt/format.h>
#include <malloc.h>

#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/output.h"
#include "cli/validators.h"
#include "lowbit/io/output_dir.h"
#include "lowbit/io/safetensors.h"
#include "lowbit/model/load.h"
#include "lowbit/quant/quantize_model.h"
#include "lowbit/util/error.h"
#include "lowbit/util/threads.h"

namespace lowbit::cli {

namespace {

struct QuantizeArgs {
  std::string model, out, algo = "gptq", weight_type, scale_dtype = "f16", recipe, json_path;
  std::string calib_precision = "bf16";
  int bits = 4, group_size = 128, threads = 0;
  bool sym = false, int4_clip = false, calib_given = false, bits_given = false;
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

int run_quantize(QuantizeArgs& a) {
  keep_freed_memory();
  set_num_threads(a.threads);
  QuantizeOptions& o = a.opt;
  o.algo = parse_quant_algo(a.algo);
  o.calib_bf16 = a.calib_precision == "bf16";
  QuantScheme s;
  if (!a.weight_type.empty()) {
    s.type = parse_weight_type("--weight-type", a.weight_type, &s.bits);
    if (a.bits_given && (s.type != WeightType::kInt || s.bits != a.bits)) {
      fail("--bits", "{} contradicts --weight-type {}; give one of them", a.bits, a.weight_type);
    }
  } else {
    s.type = WeightType::kInt;
    s.bits = a.bits;
  }
  s.group_size = a.group_size;
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
  // RTN runs without calibration unless a text is named or the clip search wants importances.
  o.calibrate = o.algo != QuantAlgo::kRtn || a.calib_given;
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
  try {
    quantize_model(a.model, a.out, o, [&](const QuantizeReport& r) {
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
  sub->add_option("--model,-m", a->model, "Input model (HF folder or llama2.c .bin)")->required();
  sub->add_option("--out,-o", a->out, "Output folder (must not exist unless --force)")->required();
  sub->add_option("--algo", a->algo, "rtn|gptq|awq (default gptq)");
  sub->add_option("--bits", a->bits, "Integer weight bits: 2, 3, 4, 8 (default 4)")
      ->check(int_in(1, 64))
      ->each([a](const std::string&) { a->bits_given = true; });
  sub->add_option("--weight-type", a->weight_type,
                  "Instead of --bits: int2|int3|int4|int8|nf4|fp4|fp8_e4m3|fp8_e5m2");
  sub->add_option("--group-size,-g", a->group_size,
                  "Input columns per scale group; -1 = per output channel (default 128)")
      ->check(int_in(-1, 1 << 24));
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
                  "everywhere)");
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
