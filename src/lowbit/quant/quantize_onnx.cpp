#include "lowbit/quant/quantize_onnx.h"

#include <filesystem>

#include "lowbit/export/onnx_quantized.h"
#include "lowbit/io/output_dir.h"
#include "lowbit/model/load.h"
#include "lowbit/util/error.h"
#include "lowbit/util/file.h"

namespace lowbit {

namespace fs = std::filesystem;

namespace {

void refuse_unsupported(const QuantizeOptions& opt) {
  const char* what = "--format onnx";
  if (opt.algo == QuantAlgo::kNone) fail(what, "--algo none writes no quantized linear");
  if (opt.recipe.base.type != WeightType::kInt) {
    fail(what, "MatMulNBits holds integer codes only; weight type {} cannot be written",
         scheme_name(opt.recipe.base));
  }
  // MatMulNBits blocks are powers of two ≥ 16: a group must be a multiple of 16.
  auto check_group = [&](int g, const std::string& who) {
    if (g > 0 && g % 16 != 0) {
      fail(what,
           "{}group size {} is not a multiple of 16 (MatMulNBits blocks are powers of two "
           "from 16)",
           who, g);
    }
  };
  check_group(opt.recipe.base.group_size, "");
  for (const RecipeRule& r : opt.recipe.rules) {
    if (!r.fields.is_object()) continue;
    if (r.fields.contains("weight_type") && r.fields["weight_type"] != "int") {
      fail(what, "MatMulNBits holds integer codes only; rule {} asks for weight type {}", r.pattern,
           r.fields["weight_type"].dump());
    }
    if (r.fields.contains("group_size") && r.fields["group_size"].is_number_integer())
      check_group(r.fields["group_size"].get<int>(), "rule " + r.pattern + ": ");
  }
  if (opt.act || !opt.act_rules.empty())
    fail(what, "MatMulNBits quantizes weights only; activation quantization cannot be written");
  if (opt.smooth) fail(what, "SmoothQuant needs activation quantization, which cannot be written");
  if (opt.rotate) fail(what, "rotations change the graph's computation; they cannot be written");
  if (opt.outliers) fail(what, "--inject-outliers writes a float model");
}

}  // namespace

QuantizeReport quantize_to_onnx(const std::string& model, const std::string& out,
                                const QuantizeOptions& opt,
                                const std::function<void(const QuantizeReport&)>& before_commit) {
  const ModelLocation loc = locate_model(model, opt.tokenizer, false);
  if (loc.onnx.empty()) {
    fail(model, "--format onnx needs an ONNX model (a .onnx file with config.json beside it)");
  }
  refuse_unsupported(opt);
  OutputDirOptions oo;
  oo.force = opt.force;
  oo.inputs = model_input_paths(model, opt.tokenizer);
  oo.inputs.push_back(loc.onnx);
  for (const std::string& p : opt.inputs) oo.inputs.push_back(p);
  if (path_exists(opt.calib.text)) oo.inputs.push_back(opt.calib.text);
  oo.command = "quantize";
  OutputDir dir(out, oo);

  // 1. The pipeline, into a staging folder in lowbit's own layout (the exact scheme everywhere).
  const std::string staging = dir.file("lowbit-staging");
  QuantizeOptions o = opt;
  o.format = "lowbit";
  o.resume = false;
  o.force = false;
  QuantizeReport rep = quantize_model(model, staging, o);

  // 2. Its codes and scales, and the graph written again with them.
  RuntimeOptions rt;
  rt.repack = false;
  rt.keep_quantized = true;
  const LoadedModel q = load_model(staging, "", false, rt);
  const std::string file = fs::path(loc.onnx).filename().string();
  write_quantized_onnx(loc.onnx, *q.weights, dir.file(file));

  // 3. config.json as the source has it, the tokenizer files the pipeline copied.
  copy_file((fs::path(loc.weights) / "config.json").string(), dir.file("config.json"));
  std::error_code ec;
  for (fs::directory_iterator it(staging, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string n = it->path().filename().string();
    const bool weights = it->path().extension() == ".safetensors" ||
                         n == "model.safetensors.index.json" || n == "config.json" ||
                         n == "quantize_config.json" || n == kManifestName;
    if (!weights && it->is_regular_file()) copy_file(it->path().string(), dir.file(n));
  }
  fs::remove_all(staging, ec);
  if (ec) fail(staging, "cannot remove: {}", ec.message());

  rep.out = out;
  rep.format = "onnx";
  rep.out_bytes = 0;
  for (fs::directory_iterator it(dir.tmp(), ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file()) rep.out_bytes += static_cast<int64_t>(it->file_size());
  }
  if (before_commit) before_commit(rep);
  dir.commit();
  return rep;
}

}  // namespace lowbit
