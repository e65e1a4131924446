#include "lowbit/quant/quantize_model.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <random>

#include "lowbit/eval/text_sets.h"
#include "lowbit/formats/checkpoint_layout.h"
#include "lowbit/formats/pack.h"
#include "lowbit/formats/quantized_config.h"
#include "lowbit/io/json_read.h"
#include "lowbit/io/limits.h"
#include "lowbit/io/output_dir.h"
#include "lowbit/io/safetensors.h"
#include "lowbit/io/tensor_convert.h"
#include "lowbit/kernels/blas.h"
#include "lowbit/kernels/cpu_dispatch.h"
#include "lowbit/kernels/packed_weight.h"
#include "lowbit/model/block.h"
#include "lowbit/model/load.h"
#include "lowbit/model/weight_source.h"
#include "lowbit/ops/hadamard.h"
#include "lowbit/ops/matmul.h"
#include "lowbit/ops/norm.h"
#include "lowbit/quant/algo/hessian.h"
#include "lowbit/quant/algo/rtn.h"
#include "lowbit/quant/algo/smoothquant.h"
#include "lowbit/quant/layer_tensors.h"
#include "lowbit/tokenizer/gguf_tokenizer.h"
#include "lowbit/util/error.h"
#include "lowbit/util/file.h"
#include "lowbit/util/finite.h"
#include "lowbit/util/half.h"
#include "lowbit/util/memory.h"
#include "lowbit/util/progress.h"
#include "lowbit/util/threads.h"

namespace lowbit {

namespace fs = std::filesystem;
using json = nlohmann::json;

QuantAlgo parse_quant_algo(const std::string& name) {
  if (name == "rtn") return QuantAlgo::kRtn;
  if (name == "gptq") return QuantAlgo::kGptq;
  if (name == "awq") return QuantAlgo::kAwq;
  if (name == "none") return QuantAlgo::kNone;
  fail("--algo", "unknown algorithm '{}' (expected rtn, gptq, awq, none)", name);
}

const char* quant_algo_name(QuantAlgo a) {
  switch (a) {
    case QuantAlgo::kRtn:
      return "rtn";
    case QuantAlgo::kGptq:
      return "gptq";
    case QuantAlgo::kAwq:
      return "awq";
    case QuantAlgo::kNone:
      return "none";
  }
  return "?";
}

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

int64_t peak_rss_bytes() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<int64_t>(ru.ru_maxrss) * 1024;
}

// Rows of one input point of a layer (e.g. attn_in) seen over the calibration set: a Hessian
// (GPTQ), per-channel sums of squares (RTN clip importance) and an evenly spaced sample of rows
// (AWQ searches and the report's output error).
struct InputStats {
  int in = 0;
  std::unique_ptr<HessianAccumulator> hessian;
  std::vector<double> sumsq;
  int64_t rows_seen = 0;
  std::vector<float> sample;      // [n_sample, in]
  std::vector<float> cmin, cmax;  // per channel over every row seen
  int n_sample = 0, cap = 0;

  // max |x_j| per channel.
  std::vector<float> absmax() const {
    std::vector<float> a(cmin.size());
    for (size_t i = 0; i < a.size(); ++i) a[i] = std::max(std::fabs(cmin[i]), std::fabs(cmax[i]));
    return a;
  }
  int64_t stride = 1;

  std::string label;  // "model.layers.3 attention input", for errors

  InputStats(int in_features, int64_t total_rows, int sample_rows, bool want_hessian,
             bool want_sumsq, std::string what, bool bf16 = false)
      : in(in_features), cap(sample_rows), label(std::move(what)) {
    if (want_hessian) hessian = std::make_unique<HessianAccumulator>(in, bf16);
    if (want_sumsq) sumsq.assign(static_cast<size_t>(in), 0.0);
    stride = std::max<int64_t>(1, total_rows / std::max(1, sample_rows));
    sample.reserve(static_cast<size_t>(std::min<int64_t>(cap, total_rows)) * in);
  }

  void add(const float* X, int rows) {
    adapt_threads();  // once per calibration sample: the threads follow the machine's load
    const size_t n = static_cast<size_t>(rows) * static_cast<size_t>(in);
    if (first_nonfinite(X, n) < n) {
      fail(label,
           "calibration activations are not finite (NaN or Inf): the model's weights "
           "overflow in fp32");
    }
    if (hessian) hessian->add(X, rows);
    if (cmin.empty()) {
      cmin.assign(static_cast<size_t>(in), INFINITY);
      cmax.assign(static_cast<size_t>(in), -INFINITY);
    }
    for (int r = 0; r < rows; ++r) {
      const float* x = X + static_cast<size_t>(r) * in;
      for (int i = 0; i < in; ++i) {
        cmin[static_cast<size_t>(i)] = std::min(cmin[static_cast<size_t>(i)], x[i]);
        cmax[static_cast<size_t>(i)] = std::max(cmax[static_cast<size_t>(i)], x[i]);
      }
    }
    if (!sumsq.empty()) {
      for (int r = 0; r < rows; ++r) {
        const float* x = X + static_cast<size_t>(r) * in;
        for (int i = 0; i < in; ++i) sumsq[static_cast<size_t>(i)] += double(x[i]) * x[i];
      }
    }
    for (int r = 0; r < rows; ++r) {
      if ((rows_seen + r) % stride == 0 && n_sample < cap) {
        const float* x = X + static_cast<size_t>(r) * in;
        sample.insert(sample.end(), x, x + in);
        ++n_sample;
      }
    }
    rows_seen += rows;
  }

  std::vector<float> importance() const {
    std::vector<float> imp(static_cast<size_t>(in), 1.0f);
    if (sumsq.empty() || rows_seen == 0) return imp;
    for (int i = 0; i < in; ++i) imp[size_t(i)] = static_cast<float>(sumsq[size_t(i)] / rows_seen);
    return imp;
  }

  void divide_sample_by(const std::vector<float>& s) {
    for (int r = 0; r < n_sample; ++r)
      for (int i = 0; i < in; ++i) sample[size_t(r) * in + i] /= s[size_t(i)];
  }
};

// ‖X(W − Q)ᵀ‖ / ‖XWᵀ‖ over at most kErrorRows evenly spaced rows of X [n, in].
constexpr int kErrorRows = 512;
double rel_output_error(const float* X_all, int n_all, const float* W, const float* Q, int out,
                        int in) {
  const int step = (n_all + kErrorRows - 1) / kErrorRows;
  const int n = (n_all + step - 1) / step;
  std::vector<float> Xs;
  const float* X = X_all;
  if (step > 1) {
    Xs.resize(size_t(n) * in);
    for (int r = 0; r < n; ++r)
      std::memcpy(&Xs[size_t(r) * in], X_all + size_t(r) * step * in, sizeof(float) * in);
    X = Xs.data();
  }
  std::vector<float> D(size_t(out) * in);
  for (size_t k = 0; k < D.size(); ++k) D[k] = W[k] - Q[k];
  std::vector<float> Y(size_t(n) * out), E(size_t(n) * out);
  kernels::sgemm(false, true, n, out, in, 1.0f, X, in, W, in, 0.0f, Y.data(), out);
  kernels::sgemm(false, true, n, out, in, 1.0f, X, in, D.data(), in, 0.0f, E.data(), out);
  double num = 0, den = 0;
  for (size_t k = 0; k < Y.size(); ++k) num += double(E[k]) * E[k], den += double(Y[k]) * Y[k];
  return den > 0 ? std::sqrt(num / den) : (num > 0 ? INFINITY : 0.0);
}

// ‖XWᵀ − Q_a(X) Qᵀ‖ / ‖XWᵀ‖ over the same rows as rel_output_error: the output error with the
// activations quantized as the runtime will (scheme `a`, static scales as calibrated).
double rel_output_error_act(const float* X_all, int n_all, const float* W, const float* Q, int out,
                            int in, const ActScheme& a) {
  const int step = (n_all + kErrorRows - 1) / kErrorRows;
  const int n = (n_all + step - 1) / step;
  std::vector<float> X(size_t(n) * in);
  for (int r = 0; r < n; ++r)
    std::memcpy(&X[size_t(r) * in], X_all + size_t(r) * step * in, sizeof(float) * in);
  std::vector<float> Xq = X;
  fake_quantize_acts(a, Xq.data(), n, in);
  std::vector<float> Y(size_t(n) * out), Yq(size_t(n) * out);
  kernels::sgemm(false, true, n, out, in, 1.0f, X.data(), in, W, in, 0.0f, Y.data(), out);
  kernels::sgemm(false, true, n, out, in, 1.0f, Xq.data(), in, Q, in, 0.0f, Yq.data(), out);
  double num = 0, den = 0;
  for (size_t k = 0; k < Y.size(); ++k) {
    const double e = double(Y[k]) - Yq[k];
    num += e * e, den += double(Y[k]) * Y[k];
  }
  return den > 0 ? std::sqrt(num / den) : (num > 0 ? INFINITY : 0.0);
}

// Σ ‖x (W − Q)ᵀ‖² over the rows of X [n, in] that a search with row stride `stride` did not see
// (at most ~512 of them); 0 when it saw them all.
double held_out_error(const float* X, int n, int stride, const float* W, const float* Q, int out,
                      int in) {
  std::vector<int> rows_v;
  for (int t = 0; t < n; ++t) {
    if (stride > 1 && t % stride != 0) rows_v.push_back(t);
  }
  if (rows_v.empty()) return 0;
  const size_t every = std::max<size_t>(1, rows_v.size() / kErrorRows);
  std::vector<float> Xs, D(size_t(out) * in);
  for (size_t i = 0; i < rows_v.size(); i += every) {
    Xs.insert(Xs.end(), X + size_t(rows_v[i]) * in, X + size_t(rows_v[i] + 1) * in);
  }
  for (size_t k = 0; k < D.size(); ++k) D[k] = W[k] - Q[k];
  const int m = static_cast<int>(Xs.size() / size_t(in));
  std::vector<float> E(size_t(m) * out);
  kernels::sgemm(false, true, m, out, in, 1.0f, Xs.data(), in, D.data(), in, 0.0f, E.data(), out);
  double e = 0;
  for (float v : E) e += double(v) * v;
  return e;
}

double rel_weight_error(const float* W, const float* Q, size_t n) {
  double num = 0, den = 0;
  for (size_t k = 0; k < n; ++k) {
    const double d = double(W[k]) - Q[k];
    num += d * d, den += double(W[k]) * W[k];
  }
  return den > 0 ? std::sqrt(num / den) : (num > 0 ? INFINITY : 0.0);
}

// A floating-point tensor written in `dtype` (F32, BF16 or F16).
PackedTensor fp_tensor(const std::string& name, const std::vector<float>& v,
                       std::vector<int64_t> shape, DType dtype) {
  PackedTensor t;
  t.name = name;
  t.dtype = dtype;
  t.shape = std::move(shape);
  if (dtype == DType::F32) {
    t.bytes.resize(v.size() * 4);
    std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
  } else {
    t.bytes.resize(v.size() * 2);
    for (size_t i = 0; i < v.size(); ++i) {
      const uint16_t h = dtype == DType::BF16 ? f32_to_bf16(v[i]) : f32_to_f16(v[i]);
      std::memcpy(t.bytes.data() + 2 * i, &h, 2);
    }
  }
  return t;
}

// One linear of a decoder layer (a part of a fused checkpoint tensor, or a whole one), its
// weights in LayerTensors.
struct LinearRef {
  TensorRole role;    // kWq, ... kWDown
  TensorRole module;  // the checkpoint tensor holding it (kWqkv for a fused q)
  InputPoint input = InputPoint::kAttnIn;
  std::vector<float>* w = nullptr;
  int out = 0, in = 0;
  std::string name;   // the module: "model.layers.3.self_attn.q_proj"
  std::string label;  // the report row: the module, ":q" etc. appended for a part
};

std::string module_name(const WeightSource& src, TensorRole role, int layer) {
  std::string n = src.name(role, layer);
  const std::string suffix = ".weight";
  if (n.size() > suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0)
    n.resize(n.size() - suffix.size());
  return n;
}

json layer_json(const LayerReport& l) {
  json j = {{"name", l.name},
            {"scheme", l.scheme},
            {"layout", l.layout},
            {"params", l.params},
            {"bits_per_weight", l.bits_per_weight},
            {"rel_error", l.rel_error},
            {"error_kind", l.error_kind},
            {"seconds", l.seconds}};
  if (!l.note.empty()) j["note"] = l.note;
  if (l.awq_alpha >= 0) j["awq_alpha"] = l.awq_alpha;
  if (!l.act.empty()) j["act"] = l.act;
  if (l.act_scale > 0) j["act_scale"] = l.act_scale;
  if (l.act_absmax >= 0) j["act_absmax"] = l.act_absmax;
  if (l.act_absmax_smoothed >= 0) j["act_absmax_smoothed"] = l.act_absmax_smoothed;
  if (l.smooth_alpha >= 0) j["smooth_alpha"] = l.smooth_alpha;
  if (l.rel_error_act >= 0) j["rel_error_act"] = l.rel_error_act;
  return j;
}

LayerReport layer_from_json(const json& j) {
  LayerReport l;
  l.name = j.at("name").get<std::string>();
  l.scheme = j.at("scheme").get<std::string>();
  l.layout = j.at("layout").get<std::string>();
  l.params = j.at("params").get<int64_t>();
  l.bits_per_weight = j.at("bits_per_weight").get<double>();
  l.rel_error = j.at("rel_error").get<double>();
  l.error_kind = j.at("error_kind").get<std::string>();
  l.seconds = j.at("seconds").get<double>();
  l.note = j.value("note", "");
  l.awq_alpha = j.value("awq_alpha", -1.0f);
  l.act = j.value("act", "");
  l.act_scale = j.value("act_scale", 0.0f);
  l.act_absmax = j.value("act_absmax", -1.0f);
  l.act_absmax_smoothed = j.value("act_absmax_smoothed", -1.0f);
  l.smooth_alpha = j.value("smooth_alpha", -1.0f);
  l.rel_error_act = j.value("rel_error_act", -1.0);
  return l;
}

// Path, size and modification time of an input file: a resume only continues a run whose
// inputs are unchanged.
json file_identity(const std::string& path) {
  struct stat st {};
  std::error_code ec;
  const std::string abs = fs::weakly_canonical(fs::absolute(path, ec), ec).string();
  if (::stat(path.c_str(), &st) != 0) return {{"path", abs}};
  return {{"path", abs},
          {"size", static_cast<int64_t>(st.st_size)},
          {"mtime_ns", static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec}};
}

std::string shard_name(int index, int n_shards) {
  return fmt::format("model-{:05}-of-{:05}.safetensors", index + 1, n_shards);
}

class Pipeline {
 public:
  Pipeline(const std::string& model, const std::string& out, const QuantizeOptions& opt)
      : opt_(opt), src_(WeightSource::open(model)), cfg_(src_->config()) {
    rep_.model = model;
    rep_.algo = quant_algo_name(opt.algo);
    rep_.format = opt.format;
    rep_.n_layers = cfg_.n_layers;
    n_shards_ = cfg_.n_layers + 1;
    if (cfg_.rope_scaling.type == "factors") {
      fail(model, "rope frequency factors (a GGUF rope_freqs tensor) have no config.json form");
    }
    if (src_->is_gguf() && opt.tokenizer.empty()) {
      gguf_tokenizer_files(
          gguf_vocab(model, cfg_.vocab_size));  // before any work: can it be written?
    }
    check_options();
    if (opt_.format == "awq" && opt_.algo != QuantAlgo::kNone) check_awq_plans();
    OutputDirOptions oo;
    oo.force = opt.force;
    oo.command = "quantize";
    oo.inputs = opt.inputs;
    for (const std::string& p : model_input_paths(model, opt.tokenizer)) oo.inputs.push_back(p);
    oo.inputs.push_back(src_->path());
    if (calibrating()) oo.inputs.push_back(calib_path());
    oo.keep_on_signal = "the layers finished so far; the same command resumes from them";
    fingerprint_ = fingerprint();
    oo.adopt = [this](const std::string& stale) { return can_resume(stale); };
    dir_ = std::make_unique<OutputDir>(out, oo);
    rep_.out = dir_->out();
    if (dir_->adopted()) restore();
  }

  QuantizeReport run(const std::function<void(const QuantizeReport&)>& before_commit) {
    const auto t0 = Clock::now();
    if (calibrating()) prepare_calibration();
    const int per_layer = static_cast<int>(block_linears(cfg_).size());
    const int n_linears = cfg_.n_layers * per_layer + 1;
    progress_ = std::make_unique<Progress>(
        fmt::format("quantize {} {}", rep_.algo, scheme_name(opt_.recipe.base)), n_linears);
    if (layers_done_ > 0) {
      progress_->update(int64_t{layers_done_} * per_layer, "resumed");
      replay_finished_layers();
    }
    for (int l = layers_done_; l < cfg_.n_layers; ++l) {
      quantize_layer(l);
      save_resume_state(l + 1);
      test_fault_after_layer(l);
    }
    write_final_shard();
    progress_->finish();
    write_configs();
    for (const std::string& p : opt_.recipe.unmatched()) {
      rep_.warnings.push_back(fmt::format("recipe pattern '{}' matched no layer", p));
    }
    summarize();
    rep_.out_bytes = 0;
    std::error_code ec;
    for (fs::directory_iterator it(dir_->tmp(), ec), end; !ec && it != end; it.increment(ec)) {
      std::error_code fec;
      const std::string name = it->path().filename().string();
      if (name == kResumeStateName || name == kLockName || !it->is_regular_file(fec)) continue;
      rep_.out_bytes += static_cast<int64_t>(it->file_size(fec));
    }
    rep_.seconds = since(t0);
    rep_.peak_rss_bytes = peak_rss_bytes();
    if (before_commit) before_commit(rep_);
    dir_->commit({kResumeStateName});
    return rep_;
  }

 private:
  bool calibrating() const { return opt_.calibrate; }

  std::string calib_path() const { return resolve_text_path(calib_text_source(opt_.calib.text)); }

  // Everything that decides the output: a resume continues only a run with the same fingerprint.
  json fingerprint() const {
    json f;
    f["lowbit"] = "0.1.0";
    json files = json::array();
    if (src_->is_hf()) {
      std::vector<std::string> names;
      std::error_code ec;
      for (fs::directory_iterator it(src_->hf_dir(), ec), end; !ec && it != end; it.increment(ec)) {
        const std::string n = it->path().filename().string();
        if (n == "config.json" || it->path().extension() == ".safetensors" ||
            it->path().extension() == ".onnx" || n == "model.safetensors.index.json") {
          names.push_back(it->path().string());
        }
      }
      std::sort(names.begin(), names.end());
      for (const std::string& n : names) files.push_back(file_identity(n));
    } else {
      files.push_back(file_identity(src_->path()));  // the llama2.c or GGUF file
    }
    f["model"] = files;
    f["tokenizer"] = opt_.tokenizer.empty() ? json("") : file_identity(opt_.tokenizer);
    f["algo"] = quant_algo_name(opt_.algo);
    f["format"] = opt_.format;
    f["gptq_version"] = opt_.gptq_version;
    f["clip_search"] = opt_.clip_search;
    f["awq_clip"] = opt_.awq_clip;
    f["sample_rows"] = opt_.sample_rows;
    f["calibrate"] = opt_.calibrate;
    f["calib_bf16"] = calib_bf16();
    f["gptq"] = {opt_.gptq.percdamp, opt_.gptq.block_size, opt_.gptq.act_order,
                 opt_.gptq.static_groups};
    f["awq"] = {opt_.awq.n_grid, opt_.awq.clip_grid, opt_.awq.clip_max_shrink,
                opt_.awq.clip_tokens};
    f["act"] = opt_.act ? act_scheme_json(*opt_.act) : json(nullptr);
    f["skip_act"] = opt_.skip_act;
    json rules_act = json::array();
    for (const auto& [pattern, a] : opt_.act_rules)
      rules_act.push_back({pattern, act_scheme_json(a)});
    f["act_rules"] = rules_act;
    f["act_calib"] = {opt_.act_calib, opt_.act_percentile};
    if (opt_.rotate)
      f["rotate"] = {opt_.rotate->r1, opt_.rotate->r2, opt_.rotate->r4, opt_.rotate->seed};
    if (opt_.outliers)
      f["outliers"] = {opt_.outliers->channels, opt_.outliers->factor, opt_.outliers->seed};
    if (opt_.smooth) {
      const SmoothOptions& so = *opt_.smooth;
      f["smooth"] = {so.alpha,
                     so.alpha_min,
                     so.alpha_max,
                     so.alpha_step,
                     alpha_criterion_name(so.criterion),
                     so.alpha_rules,
                     so.fold};
    }
    json rules = json::array();
    for (const RecipeRule& r : opt_.recipe.rules) rules.push_back({r.pattern, r.skip, r.fields});
    f["recipe"] = {{"default", module_entry(opt_.recipe.base, "")}, {"rules", rules}};
    if (calibrating()) {
      f["calib"] = {{"text", file_identity(calib_path())},
                    {"nsamples", opt_.calib.nsamples},
                    {"seqlen", opt_.calib.seqlen},
                    {"seed", opt_.calib.seed}};
    }
    return f;
  }

  bool can_resume(const std::string& stale) const {
    if (!opt_.resume) return false;
    const std::string path = (fs::path(stale) / kResumeStateName).string();
    if (!path_exists(path)) return false;
    try {
      const json j = read_json_file(path, kMaxConfigBytes * 4, "resume state");
      return j.is_object() && j.value("fingerprint", json()) == fingerprint_ &&
             j.value("n_shards", 0) == n_shards_ && j.value("layers_done", 0) >= 1 &&
             j.value("layers_done", 0) <= cfg_.n_layers;
    } catch (const std::exception&) {
      return false;  // unreadable: start over (the folder is removed)
    }
  }

  // State of the finished layers, written after each one (a kill leaves at most the layer in
  // progress to redo).
  void save_resume_state(int layers_done) {
    json layers = json::array();
    for (const LayerReport& l : rep_.layers) layers.push_back(layer_json(l));
    const json st = {{"fingerprint", fingerprint_},
                     {"n_shards", n_shards_},
                     {"layers_done", layers_done},
                     {"layers", layers},
                     {"block_seconds", rep_.block_seconds},
                     {"fallbacks", rep_.fallbacks},
                     {"modules", modules_},
                     {"weight_map", weight_map_},
                     {"total_bytes", total_bytes_}};
    write_file_atomic(dir_->file(kResumeStateName), st.dump() + "\n");
  }

  void restore() {
    const json j =
        read_json_file(dir_->file(kResumeStateName), kMaxConfigBytes * 4, "resume state");
    try {
      layers_done_ = j.at("layers_done").get<int>();
      for (const json& l : j.at("layers")) rep_.layers.push_back(layer_from_json(l));
      rep_.block_seconds = j.at("block_seconds").get<std::vector<double>>();
      rep_.fallbacks = j.at("fallbacks").get<std::vector<std::string>>();
      modules_ = j.at("modules");
      weight_map_ = j.at("weight_map").get<std::map<std::string, std::string>>();
      total_bytes_ = j.at("total_bytes").get<size_t>();
    } catch (const json::exception& e) {
      fail(dir_->file(kResumeStateName), "unreadable resume state: {}", json_error_text(e));
    }
    // Temp files of a shard that was being written when the run died.
    std::error_code ec;
    for (fs::directory_iterator it(dir_->tmp(), ec), end; !ec && it != end; it.increment(ec)) {
      if (it->path().filename().string().find(".tmp.") != std::string::npos) {
        std::error_code rec;
        fs::remove(it->path(), rec);
      }
    }
    std::fprintf(stderr, "lowbit: resuming %s: %d of %d decoder layers were finished before\n",
                 dir_->tmp().c_str(), layers_done_, cfg_.n_layers);
  }

  // The calibration hidden states after the layers a resumed run had finished: each layer read
  // back from its shard (quantized linears dequantized) and run forward, as the layer's own pass
  // computed them.
  void replay_finished_layers() {
    if (!calibrating()) return;
    const QuantizedCheckpointConfig qcfg =
        QuantizedCheckpointConfig::parse(dir_->file(kResumeStateName), quantization_config());
    for (int l = 0; l < layers_done_; ++l) {
      auto shard = SafetensorsFile::open(dir_->file(shard_name(l, n_shards_)));
      const TensorLookup lookup = [&](const std::string& n) { return shard->find(n); };
      LayerTensors T;
      for (TensorRole role : layer_roles()) {
        const std::string name = src_->name(role, l);
        const std::string module = name.substr(0, name.size() - 7);  // ".weight"
        if (is_linear_weight(role) && shard->find(module + qcfg.quantized_suffix()) != nullptr) {
          const ModuleStorage ms = qcfg.module(module, true);
          const QuantizedWeight q = read_quantized_module(ms, module, lookup);
          T.set(role, q.dequantize(), cfg_);
          if (ms.smooth_scale) {
            const TensorInfo* t = shard->find(module + ".smooth_scale");
            if (t == nullptr) fail(shard->path(), "missing tensor {}.smooth_scale", module);
            std::vector<float> s(static_cast<size_t>(t->numel()));
            tensor_to_f32(*t, s.data());
            for (TensorRole part : parts_of(role)) T.in_scale[part] = s;
          }
          continue;
        }
        const TensorInfo* t = shard->find(name);
        if (t == nullptr) fail(shard->path(), "missing tensor {}", name);
        std::vector<float> v(static_cast<size_t>(t->numel()));
        tensor_to_f32(*t, v.data());
        if (src_->transposed(role)) v = transpose(v, t->shape[0], t->shape[1]);
        T.set(role, std::move(v), cfg_);
      }
      forward_outputs(T);
    }
  }

  // Whether calibration runs on the bf16 dot product (asked, and the CPU has one).
  bool calib_bf16() const {
    return opt_.calib_bf16 && kernels::active_kernels().gemm_bf16 != nullptr;
  }

  // Points each fp32 linear of `lins` at a bf16 copy kept in `store` (reserved up front: the
  // linears keep pointers into it).
  static void hold_bf16(const std::vector<Linear*>& lins,
                        std::vector<kernels::PackedWeight>* store) {
    store->reserve(lins.size());
    for (Linear* lin : lins) {
      if (lin->w == nullptr || lin->packed != nullptr) continue;
      store->push_back(kernels::pack_bf16(lin->w, lin->out, lin->in));
      lin->packed = &store->back();
    }
  }

  // x_ ← the layer's outputs over every calibration sample, with the weights in T.
  void forward_outputs(LayerTensors& T) {
    LayerWeights W = T.view(cfg_);
    std::vector<kernels::PackedWeight> bf16;  // as Steps::run_step multiplies them
    if (calib_bf16()) hold_bf16({&W.wq, &W.wk, &W.wv, &W.wo, &W.w_gate, &W.w_up, &W.w_down}, &bf16);
    Block blk(cfg_);
    std::vector<float> cache(2 * size_t(calib_.seqlen) * cfg_.kv_dim());
    const KvView kv{cache.data(), cache.data() + cache.size() / 2, ops::KvKind::kF32};
    for (int s = 0; s < calib_.nsamples; ++s) {
      adapt_threads();
      blk.forward(W, rows(x_, s, cfg_.dim), calib_.seqlen, 0, kv);
    }
  }

  // Tests of the resume path stop the run here as a kill would (docs/RELIABILITY.md):
  // LOWBIT_TEST_SIGNAL_AFTER_LAYER="<layer> <signal number>".
  static void test_fault_after_layer(int l) {
    const char* env = std::getenv("LOWBIT_TEST_SIGNAL_AFTER_LAYER");
    int layer = -1, sig = 0;
    if (env == nullptr || std::sscanf(env, "%d %d", &layer, &sig) != 2 || layer != l) return;
    ::kill(::getpid(), sig);  // process-directed, as a kill from outside
    for (;;) ::pause();       // a caught signal: the watcher thread ends the process
  }

  void check_options() {
    if (opt_.format == "compressed-tensors") {
      if (!ct_int8_fits(opt_.recipe.base))
        fail("--format",
             "compressed-tensors (int-quantized) holds int8 per-channel symmetric "
             "weights: use --bits 8 -g -1 --sym, not {}",
             scheme_name(opt_.recipe.base));
      if (opt_.act)
        ct_quantization_config(
            {{"m", {{"layout", "compressed-tensors"}, {"act", act_scheme_json(*opt_.act)}}}});
    }
    if (opt_.format != "gptq" && opt_.format != "lowbit" && opt_.format != "compressed-tensors" &&
        opt_.format != "awq") {
      fail("--format", "unknown format '{}' (expected gptq, lowbit, awq, compressed-tensors)",
           opt_.format);
    }
    if (opt_.format == "awq") {
      const QuantScheme& b = opt_.recipe.base;
      if (b.type != WeightType::kInt || b.bits != 4 || b.scale_type != ScaleType::kF16)
        fail("--format", "awq (AutoAWQ GEMM) holds int4 weights with f16 scales, not {}",
             scheme_name(b));
      if (opt_.gptq.act_order)
        fail("--act-order", "the AWQ layout has no g_idx: act-order cannot be stored");
      if (opt_.act) fail("--act", "AWQ folders are weight-only (no activation quantization)");
      if (opt_.smooth && !opt_.smooth->fold)
        fail("--no-fold", "the AWQ layout has no input scale: fold SmoothQuant into the weights");
    }
    if (opt_.gptq_version != 1 && opt_.gptq_version != 2) {
      fail("--gptq-version", "must be 1 or 2, got {}", opt_.gptq_version);
    }
    const bool algo_calibrates = opt_.algo == QuantAlgo::kGptq || opt_.algo == QuantAlgo::kAwq;
    if (!opt_.calibrate && algo_calibrates) {
      fail("--algo", "{} needs calibration data (--calib)", quant_algo_name(opt_.algo));
    }
    if (!opt_.calibrate && opt_.smooth) fail("--smoothquant", "needs calibration data (--calib)");
    bool any_static = opt_.act && opt_.act->granularity == ActGranularity::kTensor;
    for (const auto& [pattern, a] : opt_.act_rules) {
      validate_act_scheme("--act-override " + pattern, a);
      any_static = any_static || (a.quantized && a.granularity == ActGranularity::kTensor);
    }
    if (!opt_.act_rules.empty() && !opt_.act)
      fail("--act-override", "needs --act int8 (the scheme of the other layers)");
    if (!opt_.calibrate && any_static)
      fail("--act-static", "static activation scales need calibration data (--calib)");
    if (opt_.smooth && !opt_.act) fail("--smoothquant", "needs int8 activations (--act int8)");
    if (opt_.act_calib != "absmax" && opt_.act_calib != "percentile" && opt_.act_calib != "mse")
      fail("--act-calib", "unknown method '{}' (expected absmax, percentile or mse)",
           opt_.act_calib);
    if (opt_.act_calib != "absmax" && !any_static)
      fail("--act-calib", "calibrates static scales: use it with --act int8 --act-static");
    if (!(opt_.act_percentile > 50.0 && opt_.act_percentile <= 100.0))
      fail("--act-percentile", "{} is not in (50, 100]", opt_.act_percentile);
    if (opt_.rotate && opt_.rotate->r4) cfg_.hadamard_down = true;
    if (opt_.rotate && opt_.rotate->r2)
      rot_heads_ = make_rotation(cfg_.head_dim, opt_.rotate->seed + 1);
    if (opt_.rotate && opt_.rotate->r1) {
      const ModelConfig& c = cfg_;
      if (c.post_norm || c.proj_dim > 0 || c.norm_head || !c.final_norm ||
          (c.embed_norm && c.position == PositionKind::kLearned))
        fail("--rotate",
             "{}: r1 needs a pre-norm residual stream that only embeddings and linears write "
             "(no post-norm blocks, projections, normalized head, or embedding norm over learned "
             "positions)",
             c.architecture);
      // An embedding norm (Bloom) depends on the token only: the rotated table holds its output.
      bake_embed_norm_ = c.embed_norm;
      rot_ = make_rotation(c.dim, opt_.rotate->seed);
      // LayerNorm families: the stream is made mean-free (every writer centered), so that each
      // LayerNorm equals an RMSNorm (with its bias), which commutes with the rotation.
      if (c.norm == NormKind::kLayer) {
        center_ = true;
        cfg_.norm = NormKind::kRms;
      }
    }
    if (opt_.outliers && opt_.algo != QuantAlgo::kNone)
      fail("--inject-outliers", "writes a test model: use it with --algo none");
    if (opt_.outliers && (opt_.outliers->channels < 1 || !(opt_.outliers->factor > 0.0f) ||
                          !std::isfinite(opt_.outliers->factor)))
      fail("--inject-outliers", "needs a positive channel count and a finite positive factor");
    if (opt_.smooth && !opt_.smooth->fold && opt_.algo == QuantAlgo::kNone)
      fail("--no-fold", "keeps the scale with quantized modules: not with --algo none");
    if (opt_.smooth && opt_.algo == QuantAlgo::kAwq)
      fail("--smoothquant", "combine SmoothQuant with --algo rtn or gptq (AWQ has its own scales)");
    if (opt_.sample_rows <= 0) fail("--sample-rows", "must be positive");
    validate_scheme("quantize", opt_.recipe.base);
  }

  // Tokenize the calibration text, cut the windows, embed them: x_ [N, dim].
  void prepare_calibration() {
    const ModelLocation loc = locate_model(rep_.model, opt_.tokenizer, true);
    tokenizer_path_ = loc.tokenizer;
    std::shared_ptr<Tokenizer> tok = open_tokenizer(tokenizer_path_, cfg_.vocab_size);
    CalibOptions co = opt_.calib;
    if (co.seqlen == 0) co.seqlen = std::min(512, cfg_.max_seq_len);
    if (co.seqlen > cfg_.max_seq_len) {
      fail("--seqlen", "{} exceeds the model's maximum context {}", co.seqlen, cfg_.max_seq_len);
    }
    {
      const uint64_t n = uint64_t(co.nsamples) * uint64_t(co.seqlen);
      const uint64_t q_dim = uint64_t(cfg_.n_heads) * cfg_.head_dim, hid = cfg_.hidden_dim;
      // Hidden states, attention outputs, the MLP activations (stashed up to a budget), the
      // largest Hessian and one decoder layer's fp32 weights twice (original and quantized).
      const uint64_t layer_params = 2 * uint64_t(cfg_.dim) * (q_dim + 3 * hid) +
                                    2 * uint64_t(cfg_.dim) * cfg_.n_kv_heads * cfg_.head_dim;
      const uint64_t bytes =
          4 *
          (n * (cfg_.dim + q_dim) + std::min<uint64_t>(n * hid, opt_stash_bytes() / 4) + hid * hid +
           2 * layer_params + uint64_t(opt_.sample_rows) * (2 * cfg_.dim + q_dim + hid));
      require_memory(rep_.model,
                     fmt::format("calibrating on {} x {} tokens", co.nsamples, co.seqlen), bytes);
    }
    calib_ = make_calibration_set(*tok, co);
    rep_.calib_path = calib_.path;
    rep_.nsamples = calib_.nsamples;
    rep_.seqlen = calib_.seqlen;
    rep_.calib_text_tokens = calib_.text_tokens;
    n_rows_ = static_cast<int64_t>(calib_.nsamples) * calib_.seqlen;
    for (int64_t r = 0; r < n_rows_; ++r) {
      const int id = calib_.tokens[static_cast<size_t>(r)];
      if (id < 0 || id >= cfg_.vocab_size) {
        fail(tokenizer_path_, "token id {} is outside the model's vocabulary {}", id,
             cfg_.vocab_size);
      }
    }
    // The first layer's input as the forward pass makes it (model/block.h embed_tokens): token
    // rows, learned positions (each window from position 0), the embedding norm, project_in.
    auto model_tensor = [&](TensorRole role) {
      std::vector<float> v;
      if (tensor_present(role, cfg_)) v = read(role, 0);
      return v;
    };
    const std::vector<float> emb = model_tensor(TensorRole::kTokEmbeddings);
    const std::vector<float> pos = model_tensor(TensorRole::kPosEmbeddings);
    const std::vector<float> en = model_tensor(TensorRole::kEmbedNorm);
    const std::vector<float> eb = model_tensor(TensorRole::kEmbedNormBias);
    const std::vector<float> pin = model_tensor(TensorRole::kProjIn);
    const Norm embed_norm{en.empty() ? nullptr : en.data(), eb.empty() ? nullptr : eb.data()};
    Linear proj_in;
    if (!pin.empty()) proj_in = {pin.data(), nullptr, cfg_.dim, cfg_.embed_dim()};
    x_.resize(static_cast<size_t>(n_rows_) * cfg_.dim);
    ModelConfig source_cfg = cfg_;  // the embedding norm as the source model has it
    if (center_) source_cfg.norm = NormKind::kLayer;
    std::vector<float> scratch(static_cast<size_t>(calib_.seqlen) * cfg_.embed_dim());
    for (int s = 0; s < calib_.nsamples; ++s) {
      embed_tokens(source_cfg, emb.data(), pos.empty() ? nullptr : pos.data(), embed_norm, proj_in,
                   &calib_.tokens[static_cast<size_t>(s) * calib_.seqlen], calib_.seqlen, 0,
                   rows(x_, s, cfg_.dim), scratch.data());
    }
    if (center_) center_rows(x_.data(), n_rows_, cfg_.dim);
    if (rot_) rotate_rows(*rot_, x_.data(), n_rows_);  // the rotated model's residual stream
  }

  // ---- per-layer work ----------------------------------------------------------------------

  std::vector<float> read(TensorRole role, int l) {
    std::vector<float> v = src_->read(role, l);
    src_->release(role, l);
    return v;
  }

  static std::vector<float> transpose(const std::vector<float>& v, int64_t rows, int64_t cols) {
    std::vector<float> t(v.size());
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) t[size_t(c * rows + r)] = v[size_t(r * cols + c)];
    }
    return t;
  }

  // The per-layer roles this checkpoint has, in the family's table order.
  std::vector<TensorRole> layer_roles() const {
    std::vector<TensorRole> v;
    for (const TensorSpec& sp : src_->arch().tensors) {
      if (is_per_layer(sp.role) && tensor_present(sp.role, cfg_) &&
          std::find(v.begin(), v.end(), sp.role) == v.end()) {
        v.push_back(sp.role);
      }
    }
    return v;
  }

  LayerTensors read_layer(int l) {
    LayerTensors T;
    for (TensorRole r : layer_roles()) T.set(r, read(r, l), cfg_);
    return T;
  }

  static const char* part_label(TensorRole r) {
    switch (r) {
      case TensorRole::kWq:
        return "q";
      case TensorRole::kWk:
        return "k";
      case TensorRole::kWv:
        return "v";
      case TensorRole::kWGate:
        return "gate";
      default:
        return "up";
    }
  }

  // The linears of layer l (model/arch.h block_linears), their weights in T.
  std::vector<LinearRef> linears(LayerTensors& T, int l) {
    std::vector<LinearRef> v;
    for (const BlockLinear& b : block_linears(cfg_)) {
      LinearRef r;
      r.role = b.role;
      r.module = b.module;
      r.input = b.input;
      r.w = T.part(b.role);
      r.out = b.out;
      r.in = b.in;
      r.name = module_name(*src_, b.module, l);
      r.label = b.module == b.role ? r.name : r.name + ":" + part_label(b.role);
      v.push_back(std::move(r));
    }
    return v;
  }

  // Which scheme and layout a module gets (recipe, then what the layout can hold).
  struct Plan {
    std::optional<QuantScheme> scheme;  // nullopt: floating point
    std::string layout = "fp";
    std::string note;
  };

  // `recipe_name`: the name recipes know the module by, when not its own ("lm_head" for every
  // family's head).
  Plan plan_for(const std::string& name, int out, int in, const std::string& recipe_name = "") {
    Plan p;
    p.scheme = opt_.recipe.scheme_for(recipe_name.empty() ? name : recipe_name);
    if (!p.scheme) {
      p.note = "kept in floating point (recipe)";
      return p;
    }
    const QuantScheme s = *p.scheme;
    if (opt_.format == "compressed-tensors") {
      if (!ct_int8_fits(s))
        fail(name,
             "compressed-tensors (int-quantized) holds int8 per-channel symmetric weights, "
             "not {}",
             scheme_name(s));
      p.layout = "compressed-tensors";
      return p;
    }
    if (opt_.format == "awq") {
      std::string why;
      if ((recipe_name.empty() ? name : recipe_name) == "lm_head")
        fail(name,
             "AWQ loaders keep the head in floating point: it cannot be quantized in an AWQ "
             "folder");
      if (!awq_layout_fits(s, out, in, &why)) fail(name, "cannot be written as AWQ: {}", why);
      if (s.group_size != opt_.recipe.base.group_size)
        fail(name, "group size {} differs from the folder's {} (AWQ has one group size)",
             s.group_size, opt_.recipe.base.group_size);
      p.layout = "awq";
      return p;
    }
    const bool gptq_type = s.type == WeightType::kInt && s.scale_type == ScaleType::kF16;
    if (opt_.format == "lowbit" || !gptq_type) {
      p.layout = "lowbit";
      return p;
    }
    const bool v1 = opt_.gptq_version == 1;
    if (gptq_layout_fits(s, out, in)) {
      p.layout = "gptq";
      p.scheme->zero_from_one = v1 && !s.sym;
      return p;
    }
    std::optional<QuantScheme> near = nearest_fitting_scheme(s, out, in);
    if (near) {
      near->zero_from_one = v1 && !near->sym;
      p.scheme = near;
      p.layout = "gptq";
      p.note = fmt::format("GPTQ layout cannot hold {} for [{}, {}]; used {}", scheme_name(s), out,
                           in, scheme_name(*near));
    } else {
      p.scheme.reset();
      p.note = fmt::format(
          "GPTQ layout cannot hold [{}, {}] at any bit width; kept in floating "
          "point",
          out, in);
    }
    rep_.fallbacks.push_back(name + ": " + p.note);
    return p;
  }

  // --format awq: every module's plan before any work (plan_for throws for what AWQ cannot hold),
  // so that a misfit fails at once instead of after the layers before it.
  void check_awq_plans() {
    for (int l = 0; l < cfg_.n_layers; ++l) {
      std::map<std::string, std::pair<int, int>> dims;  // module -> rows, in
      for (const BlockLinear& b : block_linears(cfg_)) {
        auto& d = dims[module_name(*src_, b.module, l)];
        d.first += b.out;
        d.second = b.in;
      }
      for (const auto& [name, d] : dims) plan_for(name, d.first, d.second);
    }
    plan_for(module_name(*src_, TensorRole::kLmHead, 0), cfg_.vocab_size, cfg_.embed_dim(),
             "lm_head");
  }

  // The plan of each module of a layer (the parts of a fused module share it).
  std::map<std::string, Plan> plans_for(const std::vector<LinearRef>& lins) {
    std::map<std::string, int> rows;
    for (const LinearRef& r : lins) rows[r.name] += r.out;
    std::map<std::string, Plan> plans;
    for (const LinearRef& r : lins) {
      if (!plans.count(r.name)) plans[r.name] = plan_for(r.name, rows[r.name], r.in);
    }
    return plans;
  }

  // The activation columns of a quantized linear's report row.
  void report_act(const LinearRef& lin, LayerReport* r) {
    const std::optional<ActScheme> a = act_for(lin.name);
    if (!a) return;
    r->act = act_scheme_name(*a);
    const ActInfo& ai = act_info_[lin.role];
    r->act_absmax = ai.absmax;
    r->act_absmax_smoothed = ai.absmax_smoothed;
    r->smooth_alpha = ai.alpha;
    if (a->quantized && a->granularity == ActGranularity::kTensor) r->act_scale = ai.scale;
  }

  // One part's quantization: its dequantized values replace W, its report row is started.
  struct PartResult {
    std::optional<QuantizedWeight> q;
    LayerReport r;
  };

  PartResult quantize_part(const LinearRef& lin, const Plan& plan, const InputStats* input,
                           const float* clip_ratios, float awq_alpha) {
    adapt_threads();
    const auto t0 = Clock::now();
    PartResult res;
    LayerReport& r = res.r;
    r.name = lin.label;
    r.params = int64_t{lin.out} * lin.in;
    r.note = plan.note;
    r.awq_alpha = awq_alpha;
    std::vector<float>& W = *lin.w;
    if (opt_.algo == QuantAlgo::kNone) {
      r.note = "not quantized (--algo none)";
      if (plan.scheme) report_act(lin, &r);
      r.act = r.act.empty() ? r.act : "fp (--algo none)";
    }
    if (!plan.scheme || opt_.algo == QuantAlgo::kNone) {
      r.scheme = "fp";
      r.layout = "fp";
      r.error_kind = "";
      r.seconds = since(t0);
      return res;
    }
    const QuantScheme& s = *plan.scheme;
    QuantizedWeight qw;
    if (opt_.algo == QuantAlgo::kGptq) {
      GptqStats st;
      qw = quantize_gptq(W.data(), lin.out, lin.in, input->hessian->hessian(), s, opt_.gptq, &st);
    } else {
      RtnOptions ro;
      std::vector<float> imp;
      if (clip_ratios != nullptr) {
        ro.clip_ratios = clip_ratios;  // AWQ's
        ro.clip_abs = true;
      } else if (opt_.clip_search) {
        ro.clip_grid = 20;
        if (input != nullptr && !input->sumsq.empty()) {
          imp = input->importance();
          ro.importance = imp.data();
        }
      }
      qw = quantize_rtn(W.data(), lin.out, lin.in, s, ro);
    }
    r.scheme = scheme_name(s);
    r.layout = plan.layout;
    report_act(lin, &r);
    const std::vector<float> dq = qw.dequantize();
    if (input != nullptr && input->n_sample > 0) {
      r.rel_error = rel_output_error(input->sample.data(), input->n_sample, W.data(), dq.data(),
                                     lin.out, lin.in);
      if (const std::optional<ActScheme> a = act_for(lin.name); a && a->quantized) {
        ActScheme run = *a;  // with the calibrated static scale
        if (run.granularity == ActGranularity::kTensor) {
          run.scale = act_info_[lin.role].scale;
          run.zero = act_info_[lin.role].zero;
        }
        r.rel_error_act = rel_output_error_act(input->sample.data(), input->n_sample, W.data(),
                                               dq.data(), lin.out, lin.in, run);
      }
    } else {
      r.rel_error = rel_weight_error(W.data(), dq.data(), dq.size());
      r.error_kind = "weight";
    }
    std::copy(dq.begin(), dq.end(), W.begin());  // keeps LayerWeights views valid
    res.q = std::move(qw);
    r.seconds = since(t0);
    return res;
  }

  // Writes the module `name` (one checkpoint linear) of layer l once all its parts are done: the
  // GPTQ or lowbit tensors of the quantized weight (the parts stacked back into the checkpoint's
  // row order), or the floating-point tensor (stacked, and transposed back when the checkpoint
  // stores it so) in `fp_dtype`.
  void emit_module(const std::string& name, TensorRole module, const std::vector<LinearRef>& lins,
                   std::map<TensorRole, PartResult>& done, LayerTensors& T, DType fp_dtype, int l,
                   std::vector<PackedTensor>* tensors) {
    std::vector<const LinearRef*> parts;
    for (const LinearRef& r : lins) {
      if (r.name == name) parts.push_back(&r);
    }
    for (const LinearRef* p : parts) {
      if (!done.count(p->role)) return;  // a part still to come
    }
    const ModelConfig& c = cfg_;
    std::vector<LayerReport> reps;
    for (const LinearRef* p : parts) reps.push_back(done[p->role].r);
    const int64_t params = [&] {
      int64_t n = 0;
      for (const LinearRef* p : parts) n += int64_t{p->out} * p->in;
      return n;
    }();
    std::string layout = reps[0].layout;
    std::vector<PackedTensor> packed;
    if (!done[parts[0]->role].q) {
      std::vector<float> w = T.get(module, c);
      std::vector<int64_t> shape = role_shape(module, c);
      if (src_->transposed(module)) {
        w = transpose(w, shape[0], shape[1]);
        std::swap(shape[0], shape[1]);
      }
      packed.push_back(fp_tensor(name + ".weight", w, shape, fp_dtype));
      modules_[name] = json{{"layout", "fp"}};
      for (LayerReport& r : reps) r.bits_per_weight = 8.0 * dtype_size(fp_dtype);
    } else {
      std::vector<QuantizedWeight> qs;
      for (const LinearRef* p : parts) qs.push_back(*done[p->role].q);
      const QuantizedWeight q = parts.size() == 1
                                    ? qs[0]
                                    : stack_rows(name, qs, fused_rows(module, c),
                                                 static_cast<int>(role_shape(module, c)[0]));
      if (layout == "gptq" && opt_.gptq_version == 1 && !gptq_v1_can_store(q)) {
        layout = "lowbit";
        const std::string note =
            "a zero point of 0 cannot be stored in GPTQ format v1; lowbit layout";
        for (LayerReport& r : reps) r.note = note;
        rep_.fallbacks.push_back(name + ": " + note);
      }
      packed = layout == "gptq"                 ? to_gptq_tensors(q, name, opt_.gptq_version)
               : layout == "awq"                ? to_awq_tensors(q, name)
               : layout == "compressed-tensors" ? to_ct_int8_tensors(q, name)
                                                : to_lowbit_tensors(q, name);
      size_t bytes = 0;
      for (const PackedTensor& t : packed) bytes += t.bytes.size();
      for (LayerReport& r : reps) {
        r.layout = layout;
        r.bits_per_weight = 8.0 * double(bytes) / double(params);
      }
      modules_[name] = module_entry(q.scheme, layout);
      if (const auto it = T.in_scale.find(parts[0]->role); it != T.in_scale.end()) {
        if (layout == "compressed-tensors" || layout == "awq")
          fail(name, "{} has no input scale: SmoothQuant --no-fold cannot be written", layout);
        packed.push_back(fp_tensor(name + ".smooth_scale", it->second,
                                   {static_cast<int64_t>(it->second.size())}, DType::F32));
        modules_[name]["smooth_scale"] = true;
      }
      if (const std::optional<ActScheme> a = act_for(name)) {
        if (a->quantized && q.scheme.type != WeightType::kInt)
          fail(name, "int8 activations need integer weights, not {}", scheme_name(q.scheme));
        modules_[name]["act"] = act_scheme_json(*a);
        if (a->quantized && a->granularity == ActGranularity::kTensor) {
          // One input point feeds every part of a fused module: one scale.
          const ActInfo& ai = act_info_[parts[0]->role];
          packed.push_back(fp_tensor(name + ".input_scale", {ai.scale}, {1}, DType::F32));
          if (!a->sym)
            packed.push_back(fp_tensor(name + ".input_zero_point", {ai.zero}, {1}, DType::F32));
        }
      }
    }
    for (PackedTensor& t : packed) tensors->push_back(std::move(t));
    for (LayerReport& r : reps) {
      rep_.layers.push_back(r);
      progress_->add(1, r.name);
    }
    (void)l;
  }

  static json module_entry(const QuantScheme& s, const std::string& layout) {
    return {{"layout", layout},
            {"weight_type", weight_type_name(s)},
            {"group_size", s.group_size},
            {"sym", s.sym || s.type != WeightType::kInt},
            {"int4_clip", s.int4_clip && s.type == WeightType::kInt},
            {"scale_dtype", scale_type_name(s.scale_type)}};
  }

  // Rows [s·seqlen, (s+1)·seqlen) of a [N, width] buffer.
  float* rows(std::vector<float>& buf, int s, int width) {
    return buf.data() + static_cast<size_t>(s) * calib_.seqlen * width;
  }

  int point_width(InputPoint p) const {
    switch (p) {
      case InputPoint::kAttnOut:
        return cfg_.q_dim();
      case InputPoint::kMlpAct:
        return cfg_.hidden_dim;
      default:
        return cfg_.dim;
    }
  }

  // The steps of a layer's forward pass (model/block.h) over every calibration sample, run in
  // order with the weights as they are when each step runs; each step recomputes cheap values
  // (norms) from what earlier steps kept.
  class Steps {
   public:
    // online_hadamard false: the forward pass without R4's transform of down_proj's input (the
    // layer before its down_proj is rotated: SmoothQuant's pass).
    Steps(Pipeline& p, LayerTensors& T, bool online_hadamard = true)
        : p_(p), T_(T), blk_(without_hadamard(p.cfg_, !online_hadamard)) {
      const ModelConfig& c = p.cfg_;
      const size_t L = static_cast<size_t>(p.calib_.seqlen);
      h_.resize(L * c.dim);
      mi_.resize(L * c.dim);
      a_one_.resize(L * c.dim);
      m_.resize(L * c.dim);
      act_one_.resize(L * c.hidden_dim);
      att_one_.resize(L * c.q_dim());
      cache_.resize(2 * L * c.kv_dim());
      // In bf16 calibration the down projection reads its input rounded to bf16 anyway (the bf16
      // dot product and Hessian): the stash keeps it in bf16, half the memory, same result.
      stash_bf16_ = p.calib_bf16();
      // Whether to stash is decided on the fp32 size either way, so that bf16 saves memory
      // rather than moving the peak (a 7B shape keeps recomputing).
      stash_act_ = double(p.n_rows_) * c.hidden_dim * sizeof(float) <= double(p.opt_stash_bytes());
    }

    static ModelConfig without_hadamard(ModelConfig c, bool off) {
      if (off) c.hadamard_down = false;
      return c;
    }

    // Runs the steps up to (and including) the one producing `point`; `observe` sees its
    // activations sample by sample.
    void run_to(int step, const std::function<void(const float*, int)>& observe = {}) {
      for (int k = done_ + 1; k <= step; ++k) run_step(k, k == step ? observe : nullptr);
      done_ = std::max(done_, step);
    }
    static int step_of(InputPoint p) {
      switch (p) {
        case InputPoint::kAttnIn:
          return 1;
        case InputPoint::kAttnOut:
          return 2;
        case InputPoint::kMlpIn:
          return 3;
        case InputPoint::kMlpAct:
          return 4;
      }
      return 1;
    }
    void finish() { run_to(5); }

   private:
    void run_step(int k, const std::function<void(const float*, int)>& observe) {
      const ModelConfig& c = p_.cfg_;
      const int L = p_.calib_.seqlen, S = p_.calib_.nsamples;
      LayerWeights W = T_.view(c);
      // bf16 copies of the linears this step multiplies by (as they are now: quantized ones
      // dequantized), for the bf16 dot product.
      std::vector<kernels::PackedWeight> bf16;
      if (p_.calib_bf16()) {
        std::vector<Linear*> used;
        if (k == 2) used = {&W.wq, &W.wk, &W.wv};
        if (k == 3) used = {&W.wo};
        if (k == 4 || (k == 5 && !stash_act_)) used = {&W.w_gate, &W.w_up};
        if (k == 5) used.push_back(&W.w_down);
        hold_bf16(used, &bf16);
      }
      const KvView kv{cache_.data(), cache_.data() + cache_.size() / 2, ops::KvKind::kF32};
      if (k == 2) att_.resize(size_t(p_.n_rows_) * c.q_dim());
      if (k == 3 && c.parallel_block) a_.resize(size_t(p_.n_rows_) * c.dim);
      if (k == 4 && stash_act_ && !stash_bf16_) act_.resize(size_t(p_.n_rows_) * c.hidden_dim);
      if (k == 4 && stash_act_ && stash_bf16_) act16_.resize(size_t(p_.n_rows_) * c.hidden_dim);
      for (int s = 0; s < S; ++s) {
        adapt_threads();
        float* x = p_.rows(p_.x_, s, c.dim);
        const float* out = nullptr;
        switch (k) {
          case 1:
            blk_.attn_in(W, x, L, h_.data());
            out = h_.data();
            break;
          case 2:
            blk_.attn_in(W, x, L, h_.data());
            blk_.attention(W, h_.data(), L, 0, kv, p_.rows(att_, s, c.q_dim()));
            out = p_.rows(att_, s, c.q_dim());
            break;
          case 3: {
            float* a = c.parallel_block ? p_.rows(a_, s, c.dim) : a_one_.data();
            ops::linear(W.wo, p_.rows(att_, s, c.q_dim()), L, a);
            blk_.after_attention(W, x, a, L);
            out = mlp_input(W, x);
            break;
          }
          case 4: {
            float* act =
                stash_act_ && !stash_bf16_ ? p_.rows(act_, s, c.hidden_dim) : act_one_.data();
            blk_.mlp_act(W, mlp_input(W, x), L, act);
            if (stash_act_ && stash_bf16_) {
              f32_to_bf16_n(act, act16_.data() + size_t(s) * L * c.hidden_dim,
                            size_t(L) * c.hidden_dim);
            }
            out = act;
            break;
          }
          case 5: {
            const float* act =
                stash_act_ && !stash_bf16_ ? p_.rows(act_, s, c.hidden_dim) : act_one_.data();
            if (!stash_act_) blk_.mlp_act(W, mlp_input(W, x), L, act_one_.data());
            if (stash_act_ && stash_bf16_) {
              bf16_to_f32_n(act16_.data() + size_t(s) * L * c.hidden_dim, act_one_.data(),
                            size_t(L) * c.hidden_dim);
            }
            ops::linear(W.w_down, act, L, m_.data());
            blk_.after_mlp(W, x, c.parallel_block ? p_.rows(a_, s, c.dim) : nullptr, m_.data(), L);
            break;
          }
        }
        if (observe && out != nullptr) observe(out, L);
      }
      if (k == 3) std::vector<float>().swap(att_);
    }

    // kMlpIn of a sample: n2(x), or n1(x) in a parallel block with one norm.
    const float* mlp_input(const LayerWeights& W, const float* x) {
      const int L = p_.calib_.seqlen;
      if (p_.cfg_.parallel_block && p_.cfg_.shared_norm) blk_.attn_in(W, x, L, h_.data());
      return blk_.mlp_in(W, x, h_.data(), L, mi_.data());
    }

    Pipeline& p_;
    LayerTensors& T_;
    Block blk_;
    int done_ = 0;
    bool stash_act_ = false, stash_bf16_ = false;
    std::vector<float> h_, mi_, a_one_, m_, act_one_, att_one_, cache_, att_, a_, act_;
    std::vector<uint16_t> act16_;
  };

  // ---- activation quantization and SmoothQuant ----------------------------------------------

  // The activation scheme of module `name` (a quantized one): nullopt when weight-only, float
  // when a --skip-act glob matches it.
  std::optional<ActScheme> act_for(const std::string& name) const {
    // The head's input stays float (a quantized lm_head is weight-only).
    if (!opt_.act || name == lm_head_name_) return std::nullopt;
    ActScheme a = *opt_.act;
    for (const auto& [pattern, rule] : opt_.act_rules) {
      if (glob_match(pattern, name)) a = rule;
    }
    for (const std::string& p : opt_.skip_act) {
      if (glob_match(p, name)) return ActScheme{};
    }
    return a;
  }
  std::map<TensorRole, std::string> role_name_;  // the current layer's module of each linear
  std::string lm_head_name_ = "lm_head";         // set when the head is written

  // What the report and the static scales need of each linear's input in the current layer.
  struct ActInfo {
    float absmax = -1, absmax_smoothed = -1, alpha = -1;
    float scale = 0, zero = 0;  // static: calibrated
  };
  std::map<TensorRole, ActInfo> act_info_;

  // The range a static scale covers (QuantizeOptions::act_calib), from the full range [lo, hi]
  // and the sampled rows.
  std::pair<float, float> static_range(const InputStats& in, float lo, float hi, bool sym) const {
    if (opt_.act_calib == "absmax" || in.n_sample == 0) {
      const float m = std::max(-lo, hi);
      return sym ? std::pair{-m, m} : std::pair{lo, hi};
    }
    std::vector<float> v(in.sample.begin(),
                         in.sample.begin() + static_cast<size_t>(in.n_sample) * in.in);
    if (opt_.act_calib == "percentile") {
      const double q = std::clamp(opt_.act_percentile, 0.0, 100.0) / 100.0;
      auto at = [&](double frac) {
        const size_t k = std::min(v.size() - 1, static_cast<size_t>(frac * double(v.size() - 1)));
        std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
        return v[k];
      };
      if (sym) {
        for (float& x : v) x = std::fabs(x);
        const float m = at(q);
        return {-m, m};
      }
      const float l = at(1.0 - q), h = at(q);
      return {l, h};
    }
    // mse: the clipping ratio of the full range with the least squared error on the sample.
    double best = INFINITY;
    std::pair<float, float> best_range{lo, hi};
    const float m = std::max(-lo, hi);
    for (int k = 0; k <= 20; ++k) {
      const float r = 1.0f - static_cast<float>(k) / 40.0f;
      const float l = sym ? -m * r : lo * r, h = sym ? m * r : hi * r;
      const float s = sym ? std::max(h, 1e-8f) / 127.0f : std::max(h - l, 1e-8f) / 254.0f;
      const float z = sym ? 0.0f : 0.5f * (l + h);
      double err = 0;
      for (float x : v) {
        const double d = x - (s * static_cast<float>(act_code(x, s, z)) + z);
        err += d * d;
      }
      if (err < best) best = err, best_range = {l, h};
    }
    return best_range;
  }

  // After the calibration inputs of group g were collected (with smoothing already folded).
  void record_input_range(const InputGroup& g, const InputStats& in) {
    if (in.cmin.empty()) return;
    const float lo = *std::min_element(in.cmin.begin(), in.cmin.end());
    const float hi = *std::max_element(in.cmax.begin(), in.cmax.end());
    const float amax = std::max(std::fabs(lo), std::fabs(hi));
    for (TensorRole role : g.linears) {
      ActInfo& a = act_info_[role];
      if (a.alpha >= 0) {
        a.absmax_smoothed = amax;
      } else {
        a.absmax = amax;
      }
      const std::optional<ActScheme> sch = act_for(role_name_[role]);
      if (sch && sch->quantized && sch->granularity == ActGranularity::kTensor) {
        const auto [slo, shi] = static_range(in, lo, hi, sch->sym);
        if (sch->sym) {
          a.scale = std::max(std::max(-slo, shi), 1e-8f) / 127.0f;
        } else {
          a.scale = std::max(shi - slo, 1e-8f) / 254.0f;
          a.zero = 0.5f * (slo + shi);
        }
      }
    }
  }

  // R1: the norms' gains moved into the linears reading them, those linears' inputs rotated
  // (W diag(g) Q), the linears writing the residual stream rotated on their outputs (Qᵀ W, b Q).
  // R4: down_proj's rows times the M its input gets online (the forward pass applies it).
  void rotate_down(LayerTensors& T) {
    ops::hadamard_rows(ops::hadamard_plan(cfg_.hidden_dim), T.down.data(), cfg_.dim);
    down_rotated_ = true;
  }
  bool down_rotated_ = false;  // of the current layer

  // C W: each column of a writer's weight [d, cols] (and its bias) minus its mean over the d
  // output channels, so that what it adds to the stream has mean zero (SliceGPT's mean folding).
  static void center_output_rows(std::vector<float>& w, std::vector<float>& b, int d, int cols) {
    for (int c = 0; c < cols; ++c) {
      double m = 0;
      for (int i = 0; i < d; ++i) m += w[static_cast<size_t>(i) * cols + c];
      m /= d;
      for (int i = 0; i < d; ++i) w[static_cast<size_t>(i) * cols + c] -= static_cast<float>(m);
    }
    if (!b.empty()) {
      double m = 0;
      for (float v : b) m += v;
      m /= d;
      for (float& v : b) v -= static_cast<float>(m);
    }
  }
  // Rows minus their means (embeddings, positions, calibration hidden states).
  static void center_rows(float* x, int64_t rows, int d) {
    for (int64_t r = 0; r < rows; ++r) {
      float* v = x + static_cast<size_t>(r) * d;
      double m = 0;
      for (int i = 0; i < d; ++i) m += v[i];
      m /= d;
      for (int i = 0; i < d; ++i) v[i] -= static_cast<float>(m);
    }
  }
  // A norm whose gain g moved into its readers keeps gain 1 and bias b diag(1/g) Q, so that the
  // readers (W diag(g) Q) still see W's input x̂ diag(g) + b.
  void rotate_norm_bias(std::vector<float>& gain, std::vector<float>& bias,
                        const std::string& what) {
    if (!bias.empty()) {
      for (size_t i = 0; i < bias.size(); ++i) {
        if (std::fabs(gain[i]) < 1e-30f)
          fail("--rotate", "{}: gain {} is zero, its bias cannot be rotated", what, i);
        bias[i] /= gain[i];
      }
      rotate_rows(*rot_, bias.data(), 1);
    }
    std::fill(gain.begin(), gain.end(), 1.0f);
  }

  // R2: the value outputs of every kv head rotated by R (head_dim × head_dim; Rᵀ W_v per head
  // block, b_v R) and o_proj's input columns of every head by the same R (W_o R per head): the
  // attention output of a head is a mix of its value rows, so it comes out rotated by R.
  void rotate_heads(LayerTensors& T) {
    const ModelConfig& c = cfg_;
    const int hd = c.head_dim;
    for (int h = 0; h < c.n_kv_heads; ++h) {
      rotate_output_rows(*rot_heads_, T.wv.data() + static_cast<size_t>(h) * hd * c.dim, c.dim);
      if (!T.bv.empty()) rotate_rows(*rot_heads_, T.bv.data() + static_cast<size_t>(h) * hd, 1);
    }
    // W_o [dim, q_dim]: each row's head segments times R, as rows of a [dim · n_heads, hd] view.
    rotate_rows(*rot_heads_, T.wo.data(), static_cast<int64_t>(c.dim) * c.n_heads);
  }

  void rotate_layer(int l, LayerTensors& T) {
    const ModelConfig& c = cfg_;
    if (rot_heads_) rotate_heads(T);
    if (!rot_) return;
    if (center_) {
      center_output_rows(T.wo, T.bo, c.dim, c.q_dim());
      center_output_rows(T.down, T.b_down, c.dim, c.hidden_dim);
    }
    std::vector<LinearRef> lins = linears(T, l);
    for (const InputGroup& g : block_input_groups(c)) {
      if (g.point != InputPoint::kAttnIn && g.point != InputPoint::kMlpIn) continue;
      const std::vector<float>& gain =
          g.preceding == Preceding::kAttnNorm ? T.attn_norm : T.ffn_norm;
      if ((g.preceding != Preceding::kAttnNorm && g.preceding != Preceding::kFfnNorm) ||
          gain.size() != static_cast<size_t>(c.dim))
        fail("--rotate", "{}: an input of layer {} is not produced by a norm", c.architecture, l);
      for (TensorRole role : g.linears) {
        const LinearRef& lin = ref(lins, role);
        scale_input_channels(lin.w->data(), lin.out, lin.in, gain.data());
        rotate_rows(*rot_, lin.w->data(), lin.out);
      }
    }
    rotate_norm_bias(T.attn_norm, T.attn_norm_b, fmt::format("layer {} attention norm", l));
    rotate_norm_bias(T.ffn_norm, T.ffn_norm_b, fmt::format("layer {} MLP norm", l));
    rotate_output_rows(*rot_, T.wo.data(), c.q_dim());
    rotate_output_rows(*rot_, T.down.data(), c.hidden_dim);
    for (std::vector<float>* b : {&T.bo, &T.b_down})
      if (!b->empty()) rotate_rows(*rot_, b->data(), 1);
    norms_f32_ = true;
  }

  // Outlier injection (test models): a function-preserving per-channel rescaling, folded like a
  // smoothing scale s with s_c = 1 / factor on the chosen channels.
  void inject_outliers(int l, LayerTensors& T) {
    std::vector<LinearRef> lins = linears(T, l);
    const QuantizeOptions::Outliers& o = *opt_.outliers;
    for (const InputGroup& g : block_input_groups(cfg_)) {
      if (preceding_of(g) == Preceding::kNone || g.preceding == Preceding::kValue) continue;
      const int width = point_width(g.point);
      std::vector<int> idx(static_cast<size_t>(width));
      std::iota(idx.begin(), idx.end(), 0);
      std::mt19937_64 rng(o.seed);
      std::shuffle(idx.begin(), idx.end(), rng);
      std::vector<float> s(static_cast<size_t>(width), 1.0f);
      for (int i = 0; i < std::min(o.channels, width); ++i)
        s[static_cast<size_t>(idx[i])] = 1.0f / o.factor;
      if (!fold_into_preceding(g.preceding, T, s)) continue;
      for (TensorRole role : g.linears) {
        const LinearRef& lin = ref(lins, role);
        scale_input_channels(lin.w->data(), lin.out, lin.in, s.data());
      }
    }
    norms_f32_ = true;
  }

  // SmoothQuant of layer l: an FP pass collects each input point's channel ranges (and a sample
  // for the α search); each group whose linears get int8 activations is smoothed and the scales
  // folded into what precedes it. The quantization that follows sees the smoothed layer.
  void smooth_layer(int l, LayerTensors& T) {
    std::vector<LinearRef> lins = linears(T, l);
    std::map<std::string, Plan> plans = plans_for(lins);
    const std::vector<InputGroup> groups = block_input_groups(cfg_);
    std::map<InputPoint, std::unique_ptr<InputStats>> points;
    const bool sample = opt_.smooth->auto_alpha();
    for (const InputGroup& g : groups) {
      points[g.point] =
          std::make_unique<InputStats>(point_width(g.point), n_rows_, sample ? opt_.sample_rows : 0,
                                       false, false, fmt::format("model.layers.{} input", l));
    }
    {
      const std::vector<float> x_saved = x_;
      Steps steps(*this, T, /*online_hadamard=*/down_rotated_);
      for (const InputGroup& g : groups) {
        steps.run_to(Steps::step_of(g.point),
                     [&](const float* x, int n) { points[g.point]->add(x, n); });
      }
      x_ = x_saved;
    }
    const bool fold = opt_.smooth->fold;
    for (const InputGroup& g : groups) {
      // Unfolded scales need no producer, but down_proj's input under r4 is transformed online
      // after the scale would apply: smoothed only when folded into up_proj before r4.
      if (fold ? preceding_of(g) == Preceding::kNone
               : (g.point == InputPoint::kMlpAct && cfg_.hadamard_down))
        continue;
      const InputStats& in = *points[g.point];
      std::vector<SmoothLinear> group;
      const QuantScheme* wscheme = nullptr;
      std::optional<ActScheme> ascheme;
      for (TensorRole role : g.linears) {
        const LinearRef& lin = ref(lins, role);
        const Plan& plan = plans[lin.name];
        if (!plan.scheme) continue;
        const std::optional<ActScheme> a = act_for(lin.name);
        if (!a || !a->quantized) continue;
        group.push_back({lin.w->data(), lin.out});
        if (wscheme == nullptr) wscheme = &*plan.scheme, ascheme = a;
      }
      // Smoothing helps only linears whose activations are quantized; all of the group's
      // linears share the input, so all are rescaled, but only those choose α.
      if (group.empty() || in.cmin.empty()) continue;
      const std::vector<float> absmax = in.absmax();
      SmoothOptions so = *opt_.smooth;
      for (const auto& [pattern, alpha] : so.alpha_rules) {
        if (glob_match(pattern, ref(lins, g.linears[0]).name)) so.alpha = alpha;
      }
      const SmoothChoice ch = smooth_choose(group, in.in, absmax, in.sample.data(), in.n_sample,
                                            *wscheme, *ascheme, so);
      const float before = *std::max_element(absmax.begin(), absmax.end());
      if (!fold) {
        // Each smoothed (quantized, int8-input) linear keeps s as its input's divisor.
        for (TensorRole role : g.linears) {
          const LinearRef& lin = ref(lins, role);
          const std::optional<ActScheme> a = act_for(lin.name);
          if (!plans[lin.name].scheme || !a || !a->quantized) continue;
          scale_input_channels(lin.w->data(), lin.out, in.in, ch.s.data());
          T.in_scale[role] = ch.s;
          act_info_[role].alpha = ch.alpha;
          act_info_[role].absmax = before;
        }
        continue;
      }
      if (!fold_into_preceding(preceding_of(g), T, ch.s)) continue;
      for (TensorRole role : g.linears) {
        const LinearRef& lin = ref(lins, role);
        scale_input_channels(lin.w->data(), lin.out, in.in, ch.s.data());
        act_info_[role].alpha = ch.alpha;
        act_info_[role].absmax = before;
      }
    }
    norms_f32_ = true;  // the norms (and preceding linears) changed: written as F32
  }

  // GPTQ and RTN: each input point's linears quantized before the steps that read their outputs.
  void quantize_sequential(int l, LayerTensors& T, std::vector<PackedTensor>* out) {
    std::vector<LinearRef> lins = linears(T, l);
    std::map<std::string, Plan> plans = plans_for(lins);
    const bool cal = calibrating();
    const bool want_h = opt_.algo == QuantAlgo::kGptq;
    Steps steps(*this, T);
    std::map<TensorRole, PartResult> done;
    for (const InputGroup& g : block_input_groups(cfg_)) {
      std::unique_ptr<InputStats> p;
      if (cal) {
        p = std::make_unique<InputStats>(
            point_width(g.point), n_rows_, opt_.sample_rows, want_h, opt_.clip_search,
            fmt::format("model.layers.{} linear input", l), opt_.calib_bf16);
        // --no-fold: the group's smoothed linears read x / s (Linear::in_scale); their statistics,
        // Hessian and static scale are of that input.
        const std::vector<float>* s = nullptr;
        for (TensorRole role : g.linears) {
          if (const auto it = T.in_scale.find(role); it != T.in_scale.end()) s = &it->second;
        }
        std::vector<float> xs;
        steps.run_to(Steps::step_of(g.point), [&](const float* x, int n) {
          if (s == nullptr) return p->add(x, n);
          const int w = p->in;
          xs.assign(x, x + static_cast<size_t>(n) * w);
          for (int t = 0; t < n; ++t)
            for (int k = 0; k < w; ++k)
              xs[static_cast<size_t>(t) * w + k] /= (*s)[static_cast<size_t>(k)];
          p->add(xs.data(), n);
        });
        record_input_range(g, *p);
      }
      for (TensorRole role : g.linears) {
        const LinearRef& lin = ref(lins, role);
        done[role] = quantize_part(lin, plans[lin.name], p.get(), nullptr, -1);
      }
      for (TensorRole role : g.linears) {
        const LinearRef& lin = ref(lins, role);
        if (!modules_.contains(lin.name)) {
          emit_module(lin.name, lin.module, lins, done, T, src_->stored_dtype(lin.module, l), l,
                      out);
        }
      }
    }
    if (cal) steps.finish();
  }

  static const LinearRef& ref(const std::vector<LinearRef>& lins, TensorRole role) {
    for (const LinearRef& r : lins) {
      if (r.role == role) return r;
    }
    fail("quantize", "no linear of role {}", int(role));
  }

  size_t opt_stash_bytes() const { return size_t{1536} << 20; }

  // What precedes a group's input for folding per-channel scales: none for down_proj's input
  // under R4 (it is transformed online after up_proj, so a channel of up is not a channel there).
  Preceding preceding_of(const InputGroup& g) const {
    if (g.point == InputPoint::kMlpAct && down_rotated_) return Preceding::kNone;
    return g.preceding;
  }

  // Divides what produces an input group's activations (the preceding norm or linear) by s, so
  // that linears whose columns are multiplied by s compute the same function; false (nothing
  // changed) where the group has no such producer or the shapes do not allow it.
  bool fold_into_preceding(Preceding preceding, LayerTensors& T, const std::vector<float>& s) {
    const ModelConfig& c = cfg_;
    bool folded = true;
    switch (preceding) {
      case Preceding::kAttnNorm:
        fold_scales_into_norm(T.attn_norm.data(),
                              T.attn_norm_b.empty() ? nullptr : T.attn_norm_b.data(), c.dim,
                              s.data());
        break;
      case Preceding::kFfnNorm:
        fold_scales_into_norm(T.ffn_norm.data(),
                              T.ffn_norm_b.empty() ? nullptr : T.ffn_norm_b.data(), c.dim,
                              s.data());
        break;
      case Preceding::kValue:
        folded = fold_scales_into_linear(T.wv.data(), T.bv.empty() ? nullptr : T.bv.data(),
                                         c.kv_dim(), c.dim, s.data(), c.q_dim());
        break;
      case Preceding::kUp:
        folded = fold_scales_into_linear(T.up.data(), T.b_up.empty() ? nullptr : T.b_up.data(),
                                         c.hidden_dim, c.dim, s.data(), c.hidden_dim);
        break;
      case Preceding::kNone:
        folded = false;
        break;
    }
    return folded;
  }

  // AWQ: FP pass collecting every input point, scale search + folding, clip search, RTN.
  void quantize_awq(int l, LayerTensors& T, std::vector<PackedTensor>* out) {
    const ModelConfig& c = cfg_;
    std::vector<LinearRef> lins = linears(T, l);
    std::map<std::string, Plan> plans = plans_for(lins);
    const std::vector<InputGroup> groups = block_input_groups(c);
    std::map<InputPoint, std::unique_ptr<InputStats>> points;
    for (const InputGroup& g : groups) {
      points[g.point] =
          std::make_unique<InputStats>(point_width(g.point), n_rows_, opt_.sample_rows, false,
                                       false, fmt::format("model.layers.{} input", l));
    }
    {
      // The FP pass on a copy of the hidden states: every input point of every sample.
      const std::vector<float> x_saved = x_;
      Steps steps(*this, T);
      for (const InputGroup& g : groups) {
        steps.run_to(Steps::step_of(g.point),
                     [&](const float* x, int n) { points[g.point]->add(x, n); });
      }
      x_ = x_saved;
    }
    for (const InputGroup& g : groups) record_input_range(g, *points[g.point]);
    std::map<TensorRole, float> alpha;
    for (const InputGroup& g : groups) {
      InputStats& in = *points[g.point];
      std::vector<AwqLinear> q;
      const QuantScheme* scheme = nullptr;
      for (TensorRole role : g.linears) {
        const LinearRef& lin = ref(lins, role);
        if (!plans[lin.name].scheme) continue;
        q.push_back({lin.w->data(), lin.out});
        if (scheme == nullptr) scheme = &*plans[lin.name].scheme;
      }
      if (q.empty() || preceding_of(g) == Preceding::kNone) continue;
      const AwqScales sc =
          awq_search_scales(q, in.in, in.sample.data(), in.n_sample, *scheme, opt_.awq);
      // Fold 1/s into what produced the input; where that cannot be done, leave the group as is.
      const bool folded = fold_into_preceding(preceding_of(g), T, sc.s);
      if (!folded) continue;
      for (TensorRole role : g.linears) {
        const LinearRef& lin = ref(lins, role);
        scale_input_channels(lin.w->data(), lin.out, in.in, sc.s.data());
        alpha[role] = sc.alpha;
      }
      in.divide_sample_by(sc.s);
    }
    std::map<TensorRole, PartResult> done;
    for (const InputGroup& g : groups) {
      const InputStats& in = *points[g.point];
      for (TensorRole role : g.linears) {
        const LinearRef& lin = ref(lins, role);
        const Plan& plan = plans[lin.name];
        const float a = alpha.count(role) ? alpha[role] : -1.0f;
        // As the AWQ reference: q and k are not clipped (their errors reach the attention scores,
        // which the clip objective, the linear's own output error, does not see). The clip ratios
        // are chosen group by group on a subsample of the sampled inputs; a linear keeps them only
        // when its output error on the other sampled inputs is lower than without clipping.
        // ggml block types fit their own scales (their clip search is the type's fitter).
        if (plan.scheme && opt_.awq_clip && plan.scheme->type != WeightType::kGgml &&
            role != TensorRole::kWq && role != TensorRole::kWk) {
          const std::vector<float> clip =
              awq_search_clip(lin.w->data(), lin.out, lin.in, in.sample.data(), in.n_sample,
                              *plan.scheme, opt_.awq);
          const std::vector<float> w = *lin.w;
          PartResult clipped = quantize_part(lin, plan, &in, clip.data(), a);
          std::vector<float> wq = *lin.w;
          *lin.w = w;
          PartResult plain = quantize_part(lin, plan, &in, nullptr, a);
          // Judged on the sampled rows the clip search did not see.
          const int stride = std::max(1, in.n_sample / std::max(1, opt_.awq.clip_tokens));
          const double e_clip = held_out_error(in.sample.data(), in.n_sample, stride, w.data(),
                                               wq.data(), lin.out, lin.in);
          const double e_plain = held_out_error(in.sample.data(), in.n_sample, stride, w.data(),
                                                lin.w->data(), lin.out, lin.in);
          if (stride == 1 || e_clip < e_plain) {
            *lin.w = std::move(wq);
            done[role] = std::move(clipped);
          } else {
            done[role] = std::move(plain);
          }
        } else {
          done[role] = quantize_part(lin, plan, &in, nullptr, a);
        }
      }
    }
    // Scaled tensors no longer match the stored ones: floating-point ones are written as F32.
    for (const LinearRef& lin : lins) {
      if (!modules_.contains(lin.name)) {
        emit_module(lin.name, lin.module, lins, done, T, DType::F32, l, out);
      }
    }
    forward_outputs(T);  // outputs with the quantized weights
    norms_f32_ = true;
  }

  void quantize_layer(int l) {
    const auto t0 = Clock::now();
    LayerTensors T = read_layer(l);
    role_name_.clear();
    for (const LinearRef& r : linears(T, l)) role_name_[r.role] = r.name;
    std::vector<PackedTensor> tensors;
    norms_f32_ = false;
    act_info_.clear();
    down_rotated_ = false;
    // Order: R1 (folds the norms), outliers / SmoothQuant in the basis the activations have
    // before R4, then R4, then quantization.
    if (rot_ || rot_heads_) rotate_layer(l, T);
    if (opt_.outliers) inject_outliers(l, T);
    if (opt_.smooth) smooth_layer(l, T);
    if (cfg_.hadamard_down) rotate_down(T);
    if (opt_.rotate) norms_f32_ = true;
    if (opt_.algo == QuantAlgo::kAwq) {
      quantize_awq(l, T, &tensors);
    } else {
      quantize_sequential(l, T, &tensors);
    }
    // Norms and biases: as stored, or F32 where AWQ rescaled them.
    for (TensorRole role : layer_roles()) {
      if (is_linear_weight(role)) continue;
      std::vector<float> v = T.get(role, cfg_);
      const std::vector<int64_t> shape = role_shape(role, cfg_);
      tensors.push_back(fp_tensor(src_->name(role, l), v, shape,
                                  norms_f32_ ? DType::F32 : src_->stored_dtype(role, l)));
    }
    write_shard(l, tensors);
    rep_.block_seconds.push_back(since(t0));
  }

  // ---- output ------------------------------------------------------------------------------

  void write_shard(int index, const std::vector<PackedTensor>& tensors) {
    const std::string fname = shard_name(index, n_shards_);
    std::vector<TensorToWrite> views;
    for (const PackedTensor& t : tensors) {
      views.push_back(t.view());
      weight_map_[t.name] = fname;
      total_bytes_ += t.bytes.size();
    }
    write_safetensors(dir_->file(fname), views, {{"format", "pt"}});
  }

  // Embeddings, final norm and (untied) lm_head; lm_head is quantized only when the recipe asks.
  // The model-level tensors: embeddings (token and position), the embedding and final norms,
  // the projections, and the (untied) lm_head, quantized only when the recipe asks.
  void write_final_shard() {
    const ModelConfig& c = cfg_;
    std::vector<PackedTensor> tensors;
    std::map<TensorRole, std::vector<float>> fp;  // what the lm_head calibration needs
    std::vector<TensorRole> roles;
    for (const TensorSpec& sp : src_->arch().tensors) {
      if (!is_per_layer(sp.role) && tensor_present(sp.role, c) &&
          std::find(roles.begin(), roles.end(), sp.role) == roles.end()) {
        roles.push_back(sp.role);
      }
    }
    std::vector<float> emb_orig, final_gain;  // R1: what the (untied) head is made of
    for (TensorRole role : roles) {
      if (role == TensorRole::kLmHead) continue;
      std::vector<float> v = read(role, 0);
      std::vector<int64_t> shape = role_shape(role, c);
      DType dtype = src_->stored_dtype(role, 0);
      if (rot_) {
        // The stream's writers rotated (E Q, positions P Q), the final norm's gain moved into
        // the head (a gain of ones left).
        if (bake_embed_norm_ &&
            (role == TensorRole::kEmbedNorm || role == TensorRole::kEmbedNormBias)) {
          continue;  // applied to the table below; the written model has no embedding norm
        }
        if (role == TensorRole::kTokEmbeddings || role == TensorRole::kPosEmbeddings) {
          if (role == TensorRole::kTokEmbeddings && c.tied_embeddings) emb_orig = v;
          if (role == TensorRole::kTokEmbeddings && bake_embed_norm_) {
            const std::vector<float> g = read(TensorRole::kEmbedNorm, 0);
            std::vector<float> b;
            if (tensor_present(TensorRole::kEmbedNormBias, c))
              b = read(TensorRole::kEmbedNormBias, 0);
            ModelConfig ln = c;
            ln.norm = center_ ? NormKind::kLayer : c.norm;  // the source model's norm kind
            std::vector<float> out(v.size());
            apply_model_norm(ln, Norm{g.data(), b.empty() ? nullptr : b.data()}, v.data(),
                             out.data(), static_cast<int>(shape[0]), static_cast<int>(shape[1]));
            v = std::move(out);
          }
          if (center_) center_rows(v.data(), shape[0], static_cast<int>(shape[1]));
          rotate_rows(*rot_, v.data(), shape[0]);
          dtype = DType::F32;
        } else if (role == TensorRole::kFinalNorm) {
          final_gain = v;
          std::fill(v.begin(), v.end(), 1.0f);
          dtype = DType::F32;
        } else if (role == TensorRole::kFinalNormBias) {
          std::vector<float> gain = read(TensorRole::kFinalNorm, 0);
          rotate_norm_bias(gain, v, "final norm");
          dtype = DType::F32;
        }
      }
      std::vector<float> stored = v;
      if (src_->transposed(role)) {
        stored = transpose(v, shape[0], shape[1]);
        std::swap(shape[0], shape[1]);
      }
      tensors.push_back(fp_tensor(src_->name(role, 0), stored, shape, dtype));
      fp[role] = std::move(v);
    }
    if (opt_.recipe.scheme_for("model.embed_tokens")) {
      rep_.warnings.push_back("embeddings are kept in floating point");
    }
    if (c.tied_embeddings && !rot_) {
      if (opt_.recipe.scheme_for("lm_head")) {
        rep_.warnings.push_back(
            "lm_head: tied to the embeddings; kept in floating point (quantizing it would untie)");
      }
      progress_->add(1, "lm_head (tied)");
    } else {
      // A rotated model's head is W diag(g_final) Q: no longer the embeddings, so a tied model is
      // untied (write_configs says so).
      std::vector<float> head =
          c.tied_embeddings && rot_ ? std::move(emb_orig) : read(TensorRole::kLmHead, 0);
      if (rot_) {
        scale_input_channels(head.data(), c.vocab_size, c.dim, final_gain.data());
        rotate_rows(*rot_, head.data(), c.vocab_size);
      }
      LinearRef lin;
      lin.role = lin.module = TensorRole::kLmHead;
      lin.w = &head;
      lin.out = c.vocab_size;
      lin.in = c.embed_dim();
      lin.name = lin.label = module_name(*src_, TensorRole::kLmHead, 0);
      lm_head_name_ = lin.name;
      const Plan plan = plan_for(lin.name, lin.out, lin.in, "lm_head");
      std::unique_ptr<InputStats> p;
      if (plan.scheme && calibrating()) {
        p = std::make_unique<InputStats>(lin.in, n_rows_, opt_.sample_rows,
                                         opt_.algo == QuantAlgo::kGptq, opt_.clip_search,
                                         "lm_head input");
        const Norm final_norm{
            fp.count(TensorRole::kFinalNorm) ? fp[TensorRole::kFinalNorm].data() : nullptr,
            fp.count(TensorRole::kFinalNormBias) ? fp[TensorRole::kFinalNormBias].data() : nullptr};
        Linear proj_out;
        if (fp.count(TensorRole::kProjOut)) {
          proj_out = {fp[TensorRole::kProjOut].data(), nullptr, c.embed_dim(), c.dim};
        }
        std::vector<float> xn(size_t(calib_.seqlen) * c.dim), pr(size_t(calib_.seqlen) * lin.in);
        for (int s = 0; s < calib_.nsamples; ++s) {
          p->add(head_input(c, final_norm, proj_out, rows(x_, s, c.dim), calib_.seqlen, xn.data(),
                            pr.data()),
                 calib_.seqlen);
        }
      }
      // AWQ has no preceding norm to fold an lm_head scale into: it is RTN there (GPTQ is the
      // only algorithm quantize_part treats differently).
      std::map<TensorRole, PartResult> done;
      done[TensorRole::kLmHead] = quantize_part(lin, plan, p.get(), nullptr, -1);
      LayerTensors none;
      if (!done[TensorRole::kLmHead].q) {
        // Written as stored: emit_module reads the weight back from the layer tensors otherwise.
        const DType head_dtype = rot_ ? DType::F32 : src_->stored_dtype(TensorRole::kLmHead, 0);
        tensors.push_back(fp_tensor(lin.name + ".weight", head, {lin.out, lin.in}, head_dtype));
        modules_[lin.name] = json{{"layout", "fp"}};
        LayerReport r = done[TensorRole::kLmHead].r;
        r.bits_per_weight = 8.0 * dtype_size(head_dtype);
        rep_.layers.push_back(r);
        progress_->add(1, r.name);
      } else {
        emit_module(lin.name, TensorRole::kLmHead, {lin}, done, none, DType::F32, -1, &tensors);
      }
    }
    write_shard(n_shards_ - 1, tensors);
  }

  std::string torch_dtype() const {
    switch (src_->stored_dtype(TensorRole::kTokEmbeddings, 0)) {
      case DType::BF16:
        return "bfloat16";
      case DType::F16:
        return "float16";
      default:
        return "float32";
    }
  }

  // The quantization_config block of the folder (and of the resume state).
  json quantization_config() const {
    if (opt_.format == "compressed-tensors") return ct_quantization_config(modules_);
    if (opt_.format == "awq")
      return awq_quantization_config_for(opt_.recipe.base, modules_, quant_algo_name(opt_.algo));
    return quantization_config_for(opt_.recipe.base, modules_, opt_.gptq.act_order,
                                   opt_.gptq.static_groups, opt_.gptq_version,
                                   quant_algo_name(opt_.algo));
  }

  void write_configs() {
    json weight_map = json::object();
    for (const auto& [k, v] : weight_map_) weight_map[k] = v;
    json idx = {{"metadata", {{"total_size", total_bytes_}}}, {"weight_map", weight_map}};
    write_file_atomic(dir_->file("model.safetensors.index.json"), idx.dump(2) + "\n");

    const json qc = quantization_config();
    nlohmann::ordered_json config;
    if (src_->is_hf()) {
      const std::string path = (fs::path(src_->hf_dir()) / "config.json").string();
      config = read_json_file<nlohmann::ordered_json>(path, kMaxConfigBytes, "config.json");
    } else {
      config = nlohmann::ordered_json::parse(to_hf_config_json(cfg_, torch_dtype()));
    }
    if (rot_ && cfg_.tied_embeddings) config["tie_word_embeddings"] = false;
    if (cfg_.hadamard_down) config["lowbit_hadamard_down_proj"] = true;
    if (center_) config["lowbit_norm"] = "rms";
    if (bake_embed_norm_) config["lowbit_embed_norm"] = false;
    // --algo none writes a floating-point model: no quantization_config.
    if (opt_.algo == QuantAlgo::kNone) {
      config.erase("quantization_config");
    } else {
      config["quantization_config"] = qc;
    }
    write_file_atomic(dir_->file("config.json"), config.dump(2) + "\n");
    if (opt_.algo != QuantAlgo::kNone && qc.value("quant_method", "") == "gptq") {
      json q = qc;
      q.erase("lowbit_modules");
      write_file_atomic(dir_->file("quantize_config.json"), q.dump(2) + "\n");
    }
    if (opt_.algo != QuantAlgo::kNone && opt_.format == "awq") {
      // AutoAWQ's own file (its key names), which vLLM also looks for.
      const json q = {
          {"zero_point", true},
          {"q_group_size", qc["group_size"]},
          {"w_bit", 4},
          {"version", "GEMM"},
          {"modules_to_not_convert", qc.value("modules_to_not_convert", json(nullptr))}};
      write_file_atomic(dir_->file("quant_config.json"), q.dump(2) + "\n");
    }
    copy_tokenizer();
  }

  void copy_tokenizer() {
    auto copy = [&](const fs::path& from) {
      copy_file(from.string(), (fs::path(dir_->tmp()) / from.filename()).string());
    };
    static const char* kFiles[] = {"tokenizer.json",
                                   "tokenizer_config.json",
                                   "special_tokens_map.json",
                                   "generation_config.json",
                                   "tokenizer.model",
                                   "vocab.json",
                                   "merges.txt",
                                   "added_tokens.json"};
    std::string tok = opt_.tokenizer;
    if (tok.empty()) tok = locate_model(rep_.model, "", !src_->is_hf()).tokenizer;
    if (tok.empty()) return;
    if (is_gguf_path(tok)) {  // the vocabulary in a GGUF file's metadata, as tokenizer files
      write_gguf_tokenizer_files(gguf_vocab(tok, cfg_.vocab_size), dir_->tmp());
      return;
    }
    fs::path t(tok);
    const PathKind kind = path_kind(tok);
    if (kind == PathKind::kDir) {
      for (const char* f : kFiles) {
        if (path_exists((t / f).string())) copy(t / f);
      }
    } else if (kind != PathKind::kMissing) {
      copy(t);
      const fs::path dir = t.parent_path();
      for (const char* f : {"tokenizer_config.json", "special_tokens_map.json"}) {
        if (t.extension() == ".json" && path_exists((dir / f).string()) && t.filename() != f) {
          copy(dir / f);
        }
      }
    }
  }

  void summarize() {
    int64_t qbits_num = 0;
    double bits = 0;
    for (const LayerReport& r : rep_.layers) {
      if (r.layout == "fp") {
        rep_.fp_params += r.params;
      } else {
        rep_.quantized_params += r.params;
        bits += r.bits_per_weight * double(r.params);
        qbits_num += r.params;
      }
    }
    rep_.bits_per_weight = qbits_num > 0 ? bits / double(qbits_num) : 0;
  }

  const QuantizeOptions opt_;
  std::unique_ptr<WeightSource> src_;
  ModelConfig cfg_;
  std::unique_ptr<OutputDir> dir_;
  std::unique_ptr<Progress> progress_;
  QuantizeReport rep_;
  std::string tokenizer_path_;
  CalibSet calib_;
  int64_t n_rows_ = 0;
  std::vector<float> x_;               // hidden states of the calibration tokens [N, dim]
  std::optional<Rotation> rot_;        // --rotate r1: the residual stream's Q
  std::optional<Rotation> rot_heads_;  // --rotate r2: each head's R
  bool center_ = false;           // r1 on a LayerNorm family: mean folded, norms become RMSNorms
  bool bake_embed_norm_ = false;  // r1 with an embedding norm: the table holds its output
  int n_shards_ = 0;
  int layers_done_ = 0;  // decoder layers a resumed run had finished
  json fingerprint_;
  bool norms_f32_ = false;
  std::map<std::string, std::string> weight_map_;
  size_t total_bytes_ = 0;
  json modules_ = json::object();
};

}  // namespace

QuantizeReport quantize_model(const std::string& model, const std::string& out,
                              const QuantizeOptions& opt,
                              const std::function<void(const QuantizeReport&)>& before_commit) {
  Pipeline p(model, out, opt);
  return p.run(before_commit);
}

json report_json(const QuantizeReport& r) {
  json layers = json::array();
  for (const LayerReport& l : r.layers) layers.push_back(layer_json(l));
  json j = {{"model", r.model},
            {"out", r.out},
            {"algo", r.algo},
            {"format", r.format},
            {"n_layers", r.n_layers},
            {"seconds", r.seconds},
            {"peak_rss_bytes", r.peak_rss_bytes},
            {"bits_per_weight", r.bits_per_weight},
            {"quantized_params", r.quantized_params},
            {"fp_params", r.fp_params},
            {"out_bytes", r.out_bytes},
            {"fallbacks", r.fallbacks},
            {"warnings", r.warnings},
            {"block_seconds", r.block_seconds},
            {"layers", layers}};
  if (!r.calib_path.empty()) {
    j["calibration"] = {{"text", r.calib_path},
                        {"nsamples", r.nsamples},
                        {"seqlen", r.seqlen},
                        {"text_tokens", r.calib_text_tokens}};
  }
  return j;
}

std::string report_text(const QuantizeReport& r) {
  std::string s;
  size_t w = 8;
  for (const LayerReport& l : r.layers) w = std::max(w, l.name.size());
  s += fmt::format("| {:<{}} | {:<32} | {:<6} | {:>7} | {:>10} | {:>7} |\n", "layer", w, "scheme",
                   "layout", "bits/w", "rel. error", "time s");
  s += fmt::format("|{:-<{}}|{:-<34}|{:-<8}|{:->9}|{:->12}|{:->9}|\n", "", w + 2, "", "", "", "",
                   "");
  for (const LayerReport& l : r.layers) {
    s += fmt::format("| {:<{}} | {:<32} | {:<6} | {:>7.3f} | {:>10.5f} | {:>7.2f} |\n", l.name, w,
                     l.scheme, l.layout, l.bits_per_weight, l.rel_error, l.seconds);
  }
  // Activations (W8A8 / W4A8): scheme, input range before and after smoothing, α, static scale.
  bool any_act = false;
  for (const LayerReport& l : r.layers) any_act = any_act || !l.act.empty();
  if (any_act) {
    auto num = [](float v, const char* f) {
      return v >= 0 ? fmt::format(fmt::runtime(f), v) : std::string("-");
    };
    s += fmt::format("\n| {:<{}} | {:<24} | {:>10} | {:>10} | {:>5} | {:>10} | {:>10} |\n", "layer",
                     w, "activations", "max |x|", "smoothed", "alpha", "scale", "W+A error");
    s += fmt::format("|{:-<{}}|{:-<26}|{:->12}|{:->12}|{:->7}|{:->12}|{:->12}|\n", "", w + 2, "",
                     "", "", "", "", "");
    for (const LayerReport& l : r.layers) {
      if (l.act.empty()) continue;
      s += fmt::format(
          "| {:<{}} | {:<24} | {:>10} | {:>10} | {:>5} | {:>10} | {:>10} |\n", l.name, w, l.act,
          num(l.act_absmax, "{:.3g}"), num(l.act_absmax_smoothed, "{:.3g}"),
          num(l.smooth_alpha, "{:.2f}"),
          l.act_scale > 0 ? fmt::format("{:.4g}", l.act_scale) : std::string("-"),
          l.rel_error_act >= 0 ? fmt::format("{:.5f}", l.rel_error_act) : std::string("-"));
    }
  }
  bool weight_err = false;
  for (const LayerReport& l : r.layers) {
    if (!l.error_kind.empty()) {
      weight_err = l.error_kind == "weight";
      break;
    }
  }
  s += fmt::format(
      "\n{} {} -> {}: {} layers, {:.3f} bits/weight over {:.2f} M quantized weights ({:.2f} M kept "
      "in floating point), {:.1f} MB written, {:.1f} s, peak RSS {:.0f} MB\n",
      r.algo, r.model, r.out, r.n_layers, r.bits_per_weight, r.quantized_params / 1e6,
      r.fp_params / 1e6, r.out_bytes / 1e6, r.seconds, r.peak_rss_bytes / 1048576.0);
  if (!r.block_seconds.empty()) {
    const double total = std::accumulate(r.block_seconds.begin(), r.block_seconds.end(), 0.0);
    s += fmt::format("decoder layers: {:.1f} s each on average, {:.1f} s at most\n",
                     total / double(r.block_seconds.size()),
                     *std::max_element(r.block_seconds.begin(), r.block_seconds.end()));
  }
  s += weight_err ? "rel. error = |W - Q| / |W| (no calibration data)\n"
                  : "rel. error = |X(W - Q)^T| / |XW^T| on sampled calibration inputs\n";
  if (!r.calib_path.empty()) {
    s += fmt::format("calibration: {} x {} tokens from {} ({} tokens)\n", r.nsamples, r.seqlen,
                     r.calib_path, r.calib_text_tokens);
  }
  for (const std::string& f : r.fallbacks) s += "fallback: " + f + "\n";
  for (const std::string& x : r.warnings) s += "warning: " + x + "\n";
  return s;
}

}  // namespace lowbit
