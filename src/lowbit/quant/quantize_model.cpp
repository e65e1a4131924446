#include "lowbit/quant/quantize_model.h"

#include <cblas.h>
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

#include "lowbit/eval/text_sets.h"
#include "lowbit/io/json_read.h"
#include "lowbit/io/limits.h"
#include "lowbit/io/output_dir.h"
#include "lowbit/io/safetensors.h"
#include "lowbit/io/tensor_convert.h"
#include "lowbit/model/load.h"
#include "lowbit/model/weight_source.h"
#include "lowbit/ops/norm.h"
#include "lowbit/quant/algo/hessian.h"
#include "lowbit/quant/algo/rtn.h"
#include "lowbit/quant/checkpoint_layout.h"
#include "lowbit/quant/layer_stages.h"
#include "lowbit/quant/pack.h"
#include "lowbit/quant/quantized_config.h"
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
  fail("--algo", "unknown algorithm '{}' (expected rtn, gptq, awq)", name);
}

const char* quant_algo_name(QuantAlgo a) {
  switch (a) {
    case QuantAlgo::kRtn:
      return "rtn";
    case QuantAlgo::kGptq:
      return "gptq";
    case QuantAlgo::kAwq:
      return "awq";
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
struct InputPoint {
  int in = 0;
  std::unique_ptr<HessianAccumulator> hessian;
  std::vector<double> sumsq;
  int64_t rows_seen = 0;
  std::vector<float> sample;  // [n_sample, in]
  int n_sample = 0, cap = 0;
  int64_t stride = 1;

  std::string label;  // "model.layers.3 attention input", for errors

  InputPoint(int in_features, int64_t total_rows, int sample_rows, bool want_hessian,
             bool want_sumsq, std::string what)
      : in(in_features), cap(sample_rows), label(std::move(what)) {
    if (want_hessian) hessian = std::make_unique<HessianAccumulator>(in);
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
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, X, in, W, in, 0.0f,
              Y.data(), out);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, X, in, D.data(), in, 0.0f,
              E.data(), out);
  double num = 0, den = 0;
  for (size_t k = 0; k < Y.size(); ++k) num += double(E[k]) * E[k], den += double(Y[k]) * Y[k];
  return den > 0 ? std::sqrt(num / den) : (num > 0 ? INFINITY : 0.0);
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

// One linear layer of a decoder layer, its weights in LayerTensors.
struct LinearRef {
  const char* key;  // "q_proj"...: index into LayerTensors
  TensorRole role;
  std::vector<float>* w = nullptr;
  int out = 0, in = 0;
  std::string name;  // "model.layers.3.self_attn.q_proj"
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
    check_options();
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
    const int n_linears = cfg_.n_layers * 7 + 1;
    progress_ = std::make_unique<Progress>(
        fmt::format("quantize {} {}", rep_.algo, scheme_name(opt_.recipe.base)), n_linears);
    if (layers_done_ > 0) {
      progress_->update(int64_t{layers_done_} * 7, "resumed");
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
            n == "model.safetensors.index.json") {
          names.push_back(it->path().string());
        }
      }
      std::sort(names.begin(), names.end());
      for (const std::string& n : names) files.push_back(file_identity(n));
    } else {
      files.push_back(file_identity(src_->llama2c_file()));
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
    f["gptq"] = {opt_.gptq.percdamp, opt_.gptq.block_size, opt_.gptq.act_order,
                 opt_.gptq.static_groups};
    f["awq"] = {opt_.awq.n_grid, opt_.awq.clip_grid, opt_.awq.clip_max_shrink,
                opt_.awq.clip_tokens};
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
    const QuantizedCheckpointConfig qcfg = QuantizedCheckpointConfig::parse(
        dir_->file(kResumeStateName),
        quantization_config_for(opt_.recipe.base, modules_, opt_.gptq.act_order,
                                opt_.gptq.static_groups, opt_.gptq_version,
                                quant_algo_name(opt_.algo)));
    for (int l = 0; l < layers_done_; ++l) {
      auto shard = SafetensorsFile::open(dir_->file(shard_name(l, n_shards_)));
      const TensorLookup lookup = [&](const std::string& n) { return shard->find(n); };
      auto fp = [&](const std::string& n) {
        const TensorInfo* t = shard->find(n);
        if (t == nullptr) fail(shard->path(), "missing tensor {}", n);
        std::vector<float> v(static_cast<size_t>(t->numel()));
        tensor_to_f32(*t, v.data());
        return v;
      };
      LayerTensors T;
      T.attn_norm = fp(src_->name(TensorRole::kAttnNorm, l));
      T.ffn_norm = fp(src_->name(TensorRole::kFfnNorm, l));
      if (cfg_.qkv_bias) {
        T.bq = fp(src_->name(TensorRole::kBq, l));
        T.bk = fp(src_->name(TensorRole::kBk, l));
        T.bv = fp(src_->name(TensorRole::kBv, l));
      }
      for (LinearRef& lin : linears(T, l)) {
        const ModuleStorage ms =
            qcfg.module(lin.name, shard->find(lin.name + ".qweight") != nullptr);
        if (ms.layout == "fp") {
          *lin.w = fp(lin.name + ".weight");
        } else {
          const QuantizedWeight q =
              ms.layout == "gptq"
                  ? from_gptq_tensors(ms.scheme, lin.name, lookup, ms.gptq_version, ms.desc_act)
                  : from_lowbit_tensors(ms.scheme, lin.name, lookup);
          *lin.w = q.dequantize();
        }
      }
      forward_outputs(T);
    }
  }

  // x_ ← the layer's outputs over every calibration sample, with the weights in T.
  void forward_outputs(LayerTensors& T) {
    const ModelConfig& c = cfg_;
    const int L = calib_.seqlen, S = calib_.nsamples;
    const int q_dim = c.n_heads * c.head_dim;
    LayerStages st(c);
    std::vector<float> xn(size_t(L) * c.dim), att(size_t(L) * q_dim), act(size_t(L) * c.hidden_dim);
    const LayerWeights W = T.view(c);
    for (int s = 0; s < S; ++s) {
      adapt_threads();
      float* x = rows(x_, s, c.dim);
      st.attn_in(W, x, L, xn.data());
      st.attn_out(W, xn.data(), L, att.data());
      st.add_attn(W, att.data(), L, x);
      st.mlp_in(W, x, L, xn.data());
      st.mlp_act(W, xn.data(), L, act.data());
      st.add_mlp(W, act.data(), L, x);
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
    if (opt_.format != "gptq" && opt_.format != "lowbit") {
      fail("--format", "unknown format '{}' (expected gptq, lowbit)", opt_.format);
    }
    if (opt_.gptq_version != 1 && opt_.gptq_version != 2) {
      fail("--gptq-version", "must be 1 or 2, got {}", opt_.gptq_version);
    }
    if (!opt_.calibrate && opt_.algo != QuantAlgo::kRtn) {
      fail("--algo", "{} needs calibration data (--calib)", quant_algo_name(opt_.algo));
    }
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
    const std::vector<float> emb = src_->read(TensorRole::kTokEmbeddings, 0);
    src_->release(TensorRole::kTokEmbeddings, 0);
    x_.resize(static_cast<size_t>(n_rows_) * cfg_.dim);
    for (int64_t r = 0; r < n_rows_; ++r) {
      const int id = calib_.tokens[static_cast<size_t>(r)];
      if (id < 0 || id >= cfg_.vocab_size) {
        fail(tokenizer_path_, "token id {} is outside the model's vocabulary {}", id,
             cfg_.vocab_size);
      }
      std::memcpy(&x_[size_t(r) * cfg_.dim], &emb[size_t(id) * cfg_.dim], sizeof(float) * cfg_.dim);
    }
  }

  // ---- per-layer work ----------------------------------------------------------------------

  std::vector<float> read(TensorRole role, int l) {
    std::vector<float> v = src_->read(role, l);
    src_->release(role, l);
    return v;
  }

  LayerTensors read_layer(int l) {
    LayerTensors T;
    T.attn_norm = read(TensorRole::kAttnNorm, l);
    T.ffn_norm = read(TensorRole::kFfnNorm, l);
    T.wq = read(TensorRole::kWq, l);
    T.wk = read(TensorRole::kWk, l);
    T.wv = read(TensorRole::kWv, l);
    T.wo = read(TensorRole::kWo, l);
    if (cfg_.qkv_bias) {
      T.bq = read(TensorRole::kBq, l);
      T.bk = read(TensorRole::kBk, l);
      T.bv = read(TensorRole::kBv, l);
    }
    T.gate = read(TensorRole::kWGate, l);
    T.up = read(TensorRole::kWUp, l);
    T.down = read(TensorRole::kWDown, l);
    return T;
  }

  std::vector<LinearRef> linears(LayerTensors& T, int l) {
    const int q_dim = cfg_.n_heads * cfg_.head_dim, kv_dim = cfg_.n_kv_heads * cfg_.head_dim;
    std::vector<LinearRef> v = {
        {"q", TensorRole::kWq, &T.wq, q_dim, cfg_.dim, ""},
        {"k", TensorRole::kWk, &T.wk, kv_dim, cfg_.dim, ""},
        {"v", TensorRole::kWv, &T.wv, kv_dim, cfg_.dim, ""},
        {"o", TensorRole::kWo, &T.wo, cfg_.dim, q_dim, ""},
        {"gate", TensorRole::kWGate, &T.gate, cfg_.hidden_dim, cfg_.dim, ""},
        {"up", TensorRole::kWUp, &T.up, cfg_.hidden_dim, cfg_.dim, ""},
        {"down", TensorRole::kWDown, &T.down, cfg_.dim, cfg_.hidden_dim, ""},
    };
    for (LinearRef& r : v) r.name = module_name(*src_, r.role, l);
    return v;
  }

  // Which scheme and layout a linear gets (recipe, then what the layout can hold).
  struct Plan {
    std::optional<QuantScheme> scheme;  // nullopt: floating point
    std::string layout = "fp";
    std::string note;
  };

  Plan plan_for(const std::string& name, int out, int in) {
    Plan p;
    p.scheme = opt_.recipe.scheme_for(name);
    if (!p.scheme) {
      p.note = "kept in floating point (recipe)";
      return p;
    }
    const QuantScheme s = *p.scheme;
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

  // Quantizes W in place (its values become the dequantized weights), appends the tensors to
  // write, and reports. `input` may be null (RTN without calibration).
  void quantize_linear(const LinearRef& lin, const Plan& plan, const InputPoint* input,
                       const float* clip_ratios, float awq_alpha, DType fp_dtype,
                       std::vector<PackedTensor>* tensors) {
    adapt_threads();
    const auto t0 = Clock::now();
    LayerReport r;
    r.name = lin.name;
    r.params = int64_t{lin.out} * lin.in;
    r.note = plan.note;
    r.awq_alpha = awq_alpha;
    std::vector<float>& W = *lin.w;
    if (!plan.scheme) {
      r.scheme = "fp";
      r.layout = "fp";
      r.error_kind = "";
      r.bits_per_weight = 8.0 * dtype_size(fp_dtype);
      tensors->push_back(fp_tensor(lin.name + ".weight", W, {lin.out, lin.in}, fp_dtype));
      modules_[lin.name] = json{{"layout", "fp"}};
      r.seconds = since(t0);
      rep_.layers.push_back(r);
      progress_->add(1, lin.name);
      return;
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
        ro.clip_ratios = clip_ratios;
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
    if (r.layout == "gptq" && opt_.gptq_version == 1 && !gptq_v1_can_store(qw)) {
      r.layout = "lowbit";
      r.note = "a zero point of 0 cannot be stored in GPTQ format v1; lowbit layout";
      rep_.fallbacks.push_back(lin.name + ": " + r.note);
    }
    std::vector<PackedTensor> packed = r.layout == "gptq"
                                           ? to_gptq_tensors(qw, lin.name, opt_.gptq_version)
                                           : to_lowbit_tensors(qw, lin.name);
    size_t bytes = 0;
    for (const PackedTensor& t : packed) bytes += t.bytes.size();
    r.bits_per_weight = 8.0 * double(bytes) / double(r.params);
    const std::vector<float> dq = qw.dequantize();
    if (input != nullptr && input->n_sample > 0) {
      r.rel_error = rel_output_error(input->sample.data(), input->n_sample, W.data(), dq.data(),
                                     lin.out, lin.in);
    } else {
      r.rel_error = rel_weight_error(W.data(), dq.data(), dq.size());
      r.error_kind = "weight";
    }
    std::copy(dq.begin(), dq.end(), W.begin());  // keeps LayerWeights views valid
    for (PackedTensor& t : packed) tensors->push_back(std::move(t));
    modules_[lin.name] = module_entry(s, r.layout);
    r.seconds = since(t0);
    rep_.layers.push_back(r);
    progress_->add(1, lin.name);
  }

  static json module_entry(const QuantScheme& s, const std::string& layout) {
    return {{"layout", layout},
            {"weight_type", weight_type_name(s.type, s.bits)},
            {"group_size", s.group_size},
            {"sym", s.sym || s.type != WeightType::kInt},
            {"int4_clip", s.int4_clip && s.type == WeightType::kInt},
            {"scale_dtype", scale_type_name(s.scale_type)}};
  }

  // Rows [s·seqlen, (s+1)·seqlen) of a [N, width] buffer.
  float* rows(std::vector<float>& buf, int s, int width) {
    return buf.data() + static_cast<size_t>(s) * calib_.seqlen * width;
  }

  // GPTQ and RTN: the linears quantized in the order they consume their inputs.
  void quantize_sequential(int l, LayerTensors& T, std::vector<PackedTensor>* out) {
    const ModelConfig& c = cfg_;
    std::vector<LinearRef> lins = linears(T, l);
    std::vector<Plan> plans;
    for (const LinearRef& r : lins) plans.push_back(plan_for(r.name, r.out, r.in));
    const bool cal = calibrating();
    const bool want_h = opt_.algo == QuantAlgo::kGptq;
    const bool want_ss = opt_.clip_search;
    const int L = calib_.seqlen, S = calib_.nsamples;
    const int q_dim = c.n_heads * c.head_dim;
    LayerStages st(c);
    auto point = [&](int in) {
      return std::make_unique<InputPoint>(in, n_rows_, opt_.sample_rows, want_h, want_ss,
                                          fmt::format("model.layers.{} linear input", l));
    };
    auto q = [&](int i, const InputPoint* in) {
      quantize_linear(lins[size_t(i)], plans[size_t(i)], cal ? in : nullptr, nullptr, -1,
                      src_->stored_dtype(lins[size_t(i)].role, l), out);
    };
    std::vector<float> xn(static_cast<size_t>(cal ? L : 0) * c.dim);

    // q, k, v <- attn_in
    std::unique_ptr<InputPoint> p;
    if (cal) {
      p = point(c.dim);
      const LayerWeights W = T.view(c);
      for (int s = 0; s < S; ++s) {
        st.attn_in(W, rows(x_, s, c.dim), L, xn.data());
        p->add(xn.data(), L);
      }
    }
    for (int i = 0; i < 3; ++i) q(i, p.get());
    // o <- attn_out
    std::vector<float> att;
    if (cal) {
      p = point(q_dim);
      att.resize(static_cast<size_t>(n_rows_) * q_dim);
      const LayerWeights W = T.view(c);
      for (int s = 0; s < S; ++s) {
        st.attn_in(W, rows(x_, s, c.dim), L, xn.data());
        st.attn_out(W, xn.data(), L, rows(att, s, q_dim));
        p->add(rows(att, s, q_dim), L);
      }
    }
    q(3, p.get());
    // gate, up <- mlp_in (x becomes x + attention)
    if (cal) {
      p = point(c.dim);
      const LayerWeights W = T.view(c);
      for (int s = 0; s < S; ++s) {
        st.add_attn(W, rows(att, s, q_dim), L, rows(x_, s, c.dim));
        st.mlp_in(W, rows(x_, s, c.dim), L, xn.data());
        p->add(xn.data(), L);
      }
      std::vector<float>().swap(att);
    }
    q(4, p.get());
    q(5, p.get());
    // down <- mlp_act (kept for the output pass when it fits the stash budget)
    std::vector<float> act, act_one;
    const bool stash =
        cal && double(n_rows_) * c.hidden_dim * sizeof(float) <= double(opt_stash_bytes());
    if (cal) {
      p = point(c.hidden_dim);
      if (stash) {
        act.resize(static_cast<size_t>(n_rows_) * c.hidden_dim);
      } else {
        act_one.resize(static_cast<size_t>(L) * c.hidden_dim);
      }
      const LayerWeights W = T.view(c);
      for (int s = 0; s < S; ++s) {
        float* a = stash ? rows(act, s, c.hidden_dim) : act_one.data();
        st.mlp_in(W, rows(x_, s, c.dim), L, xn.data());
        st.mlp_act(W, xn.data(), L, a);
        p->add(a, L);
      }
    }
    q(6, p.get());
    // the layer's output with every linear quantized
    if (cal) {
      const LayerWeights W = T.view(c);
      for (int s = 0; s < S; ++s) {
        float* a = stash ? rows(act, s, c.hidden_dim) : act_one.data();
        if (!stash) {
          st.mlp_in(W, rows(x_, s, c.dim), L, xn.data());
          st.mlp_act(W, xn.data(), L, a);
        }
        st.add_mlp(W, a, L, rows(x_, s, c.dim));
      }
    }
  }

  size_t opt_stash_bytes() const { return size_t{1536} << 20; }

  // AWQ: FP pass collecting every input point, scale search + folding, clip search, RTN.
  void quantize_awq(int l, LayerTensors& T, std::vector<PackedTensor>* out) {
    const ModelConfig& c = cfg_;
    std::vector<LinearRef> lins = linears(T, l);
    std::vector<Plan> plans;
    for (const LinearRef& r : lins) plans.push_back(plan_for(r.name, r.out, r.in));
    const int L = calib_.seqlen, S = calib_.nsamples;
    const int q_dim = c.n_heads * c.head_dim, kv_dim = c.n_kv_heads * c.head_dim;
    LayerStages st(c);
    const std::string at = fmt::format("model.layers.{} ", l);
    InputPoint p_attn(c.dim, n_rows_, opt_.sample_rows, false, false, at + "attention input");
    InputPoint p_o(q_dim, n_rows_, opt_.sample_rows, false, false, at + "o_proj input");
    InputPoint p_mlp(c.dim, n_rows_, opt_.sample_rows, false, false, at + "MLP input");
    InputPoint p_down(c.hidden_dim, n_rows_, opt_.sample_rows, false, false,
                      at + "down_proj input");
    {
      std::vector<float> h(size_t(L) * c.dim), xn(size_t(L) * c.dim), att(size_t(L) * q_dim),
          act(size_t(L) * c.hidden_dim);
      const LayerWeights W = T.view(c);
      for (int s = 0; s < S; ++s) {
        std::memcpy(h.data(), rows(x_, s, c.dim), sizeof(float) * h.size());
        st.attn_in(W, h.data(), L, xn.data());
        p_attn.add(xn.data(), L);
        st.attn_out(W, xn.data(), L, att.data());
        p_o.add(att.data(), L);
        st.add_attn(W, att.data(), L, h.data());
        st.mlp_in(W, h.data(), L, xn.data());
        p_mlp.add(xn.data(), L);
        st.mlp_act(W, xn.data(), L, act.data());
        p_down.add(act.data(), L);
      }
    }
    std::vector<float> alpha(lins.size(), -1.0f);
    // Searches s for the quantized linears of a group, scales every linear of the group by s and
    // divides the sampled inputs by s; `fold` folds 1/s into what precedes (false: cannot).
    auto group = [&](std::vector<int> idx, InputPoint& in,
                     const std::function<bool(const std::vector<float>&)>& fold) {
      std::vector<AwqLinear> q;
      const QuantScheme* scheme = nullptr;
      for (int i : idx) {
        if (!plans[size_t(i)].scheme) continue;
        q.push_back({lins[size_t(i)].w->data(), lins[size_t(i)].out});
        if (scheme == nullptr) scheme = &*plans[size_t(i)].scheme;
      }
      if (q.empty()) return;
      const AwqScales sc =
          awq_search_scales(q, in.in, in.sample.data(), in.n_sample, *scheme, opt_.awq);
      if (!fold(sc.s)) return;
      for (int i : idx) {
        scale_input_channels(lins[size_t(i)].w->data(), lins[size_t(i)].out, in.in, sc.s.data());
        alpha[size_t(i)] = sc.alpha;
      }
      in.divide_sample_by(sc.s);
    };
    float* bv = T.bv.empty() ? nullptr : T.bv.data();
    group({0, 1, 2}, p_attn, [&](const std::vector<float>& s) {
      fold_scales_into_norm(T.attn_norm.data(), nullptr, c.dim, s.data());
      return true;
    });
    group({3}, p_o, [&](const std::vector<float>& s) {
      return fold_scales_into_linear(T.wv.data(), bv, kv_dim, c.dim, s.data(), q_dim);
    });
    group({4, 5}, p_mlp, [&](const std::vector<float>& s) {
      fold_scales_into_norm(T.ffn_norm.data(), nullptr, c.dim, s.data());
      return true;
    });
    group({6}, p_down, [&](const std::vector<float>& s) {
      return fold_scales_into_linear(T.up.data(), nullptr, c.hidden_dim, c.dim, s.data(),
                                     c.hidden_dim);
    });
    const InputPoint* inputs[] = {&p_attn, &p_attn, &p_attn, &p_o, &p_mlp, &p_mlp, &p_down};
    for (size_t i = 0; i < lins.size(); ++i) {
      std::vector<float> clip;
      const InputPoint& in = *inputs[i];
      if (plans[i].scheme && opt_.awq_clip) {
        clip = awq_search_clip(lins[i].w->data(), lins[i].out, lins[i].in, in.sample.data(),
                               in.n_sample, *plans[i].scheme, opt_.awq);
      }
      // Scaled tensors no longer match the stored ones: floating-point ones are written as F32.
      quantize_linear(lins[i], plans[i], &in, clip.empty() ? nullptr : clip.data(), alpha[i],
                      DType::F32, out);
    }
    forward_outputs(T);  // outputs with the quantized weights
    norms_f32_ = true;
  }

  void quantize_layer(int l) {
    const auto t0 = Clock::now();
    LayerTensors T = read_layer(l);
    std::vector<PackedTensor> tensors;
    norms_f32_ = false;
    if (opt_.algo == QuantAlgo::kAwq) {
      quantize_awq(l, T, &tensors);
    } else {
      quantize_sequential(l, T, &tensors);
    }
    auto norm_dtype = [&](TensorRole role) {
      return norms_f32_ ? DType::F32 : src_->stored_dtype(role, l);
    };
    tensors.push_back(fp_tensor(src_->name(TensorRole::kAttnNorm, l), T.attn_norm, {cfg_.dim},
                                norm_dtype(TensorRole::kAttnNorm)));
    tensors.push_back(fp_tensor(src_->name(TensorRole::kFfnNorm, l), T.ffn_norm, {cfg_.dim},
                                norm_dtype(TensorRole::kFfnNorm)));
    if (cfg_.qkv_bias) {
      const int q_dim = cfg_.n_heads * cfg_.head_dim, kv_dim = cfg_.n_kv_heads * cfg_.head_dim;
      tensors.push_back(fp_tensor(src_->name(TensorRole::kBq, l), T.bq, {q_dim},
                                  src_->stored_dtype(TensorRole::kBq, l)));
      tensors.push_back(fp_tensor(src_->name(TensorRole::kBk, l), T.bk, {kv_dim},
                                  src_->stored_dtype(TensorRole::kBk, l)));
      tensors.push_back(
          fp_tensor(src_->name(TensorRole::kBv, l), T.bv, {kv_dim},
                    norms_f32_ ? DType::F32 : src_->stored_dtype(TensorRole::kBv, l)));
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
  void write_final_shard() {
    std::vector<PackedTensor> tensors;
    {
      const std::vector<float> emb = read(TensorRole::kTokEmbeddings, 0);
      tensors.push_back(fp_tensor(src_->name(TensorRole::kTokEmbeddings, 0), emb,
                                  {cfg_.vocab_size, cfg_.dim},
                                  src_->stored_dtype(TensorRole::kTokEmbeddings, 0)));
      if (opt_.recipe.scheme_for("model.embed_tokens")) {
        rep_.warnings.push_back("model.embed_tokens: embeddings are kept in floating point");
      }
    }
    std::vector<float> norm = read(TensorRole::kFinalNorm, 0);
    tensors.push_back(fp_tensor(src_->name(TensorRole::kFinalNorm, 0), norm, {cfg_.dim},
                                src_->stored_dtype(TensorRole::kFinalNorm, 0)));
    if (cfg_.tied_embeddings) {
      if (opt_.recipe.scheme_for("lm_head")) {
        rep_.warnings.push_back(
            "lm_head: tied to the embeddings; kept in floating point (quantizing it would untie)");
      }
      progress_->add(1, "lm_head (tied)");
    } else {
      std::vector<float> head = read(TensorRole::kLmHead, 0);
      LinearRef lin{"lm_head", TensorRole::kLmHead, &head, cfg_.vocab_size, cfg_.dim, "lm_head"};
      const Plan plan = plan_for("lm_head", lin.out, lin.in);
      std::unique_ptr<InputPoint> p;
      if (plan.scheme && calibrating()) {
        p = std::make_unique<InputPoint>(cfg_.dim, n_rows_, opt_.sample_rows,
                                         opt_.algo == QuantAlgo::kGptq, opt_.clip_search,
                                         "lm_head input");
        std::vector<float> xn(size_t(calib_.seqlen) * cfg_.dim);
        for (int s = 0; s < calib_.nsamples; ++s) {
          ops::rmsnorm(rows(x_, s, cfg_.dim), norm.data(), xn.data(), calib_.seqlen, cfg_.dim,
                       cfg_.norm_eps);
          p->add(xn.data(), calib_.seqlen);
        }
      }
      // AWQ has no preceding norm to fold an lm_head scale into: quantize_linear uses RTN for it
      // (GPTQ is the only algorithm it treats differently).
      quantize_linear(lin, plan, p.get(), nullptr, -1, src_->stored_dtype(TensorRole::kLmHead, 0),
                      &tensors);
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

  void write_configs() {
    json weight_map = json::object();
    for (const auto& [k, v] : weight_map_) weight_map[k] = v;
    json idx = {{"metadata", {{"total_size", total_bytes_}}}, {"weight_map", weight_map}};
    write_file_atomic(dir_->file("model.safetensors.index.json"), idx.dump(2) + "\n");

    const json qc = quantization_config_for(opt_.recipe.base, modules_, opt_.gptq.act_order,
                                            opt_.gptq.static_groups, opt_.gptq_version,
                                            quant_algo_name(opt_.algo));
    nlohmann::ordered_json config;
    if (src_->is_hf()) {
      const std::string path = (fs::path(src_->hf_dir()) / "config.json").string();
      config = read_json_file<nlohmann::ordered_json>(path, kMaxConfigBytes, "config.json");
    } else {
      config = nlohmann::ordered_json::parse(to_hf_config_json(cfg_, torch_dtype()));
    }
    config["quantization_config"] = qc;
    write_file_atomic(dir_->file("config.json"), config.dump(2) + "\n");
    if (qc.value("quant_method", "") == "gptq") {
      json q = qc;
      q.erase("lowbit_modules");
      write_file_atomic(dir_->file("quantize_config.json"), q.dump(2) + "\n");
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
  std::vector<float> x_;  // hidden states of the calibration tokens [N, dim]
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
