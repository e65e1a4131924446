// The quantization pipeline end to end: quantize_model writes a folder (configs, per-layer
// shards, no temp folder left), load_model reads it back to exactly the weights the algorithm
// produced (GPTQ v1/v2 and lowbit layouts, every weight type, with and without lowbit_modules),
// ragged shapes fall back in the GPTQ layout, calibrated algorithms beat RTN on the real model,
// the layer stages reproduce the forward pass, and the report tells what happened.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "lowbit/eval/kld.h"
#include "lowbit/eval/text_sets.h"
#include "lowbit/eval/windows.h"
#include "lowbit/formats/quantized_config.h"
#include "lowbit/io/output_dir.h"
#include "lowbit/io/safetensors.h"
#include "lowbit/kernels/packed_weight.h"
#include "lowbit/model/arch.h"
#include "lowbit/model/block.h"
#include "lowbit/model/config.h"
#include "lowbit/model/load.h"
#include "lowbit/model/transformer.h"
#include "lowbit/ops/matmul.h"
#include "lowbit/ops/norm.h"
#include "lowbit/quant/algo/rtn.h"
#include "lowbit/quant/layer_tensors.h"
#include "lowbit/quant/quantize_model.h"
#include "lowbit/util/error.h"
#include "test_util.h"
#include "tiny_model.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::TempDir;

// ---- helpers -------------------------------------------------------------------------------

// The fp32 array of a tensor role in ModelWeights.
const float* role_data(const ModelWeights& w, TensorRole role, int l) {
  const LayerWeights* L =
      l >= 0 && l < static_cast<int>(w.layers.size()) ? &w.layers[size_t(l)] : nullptr;
  switch (role) {
    case TensorRole::kTokEmbeddings:
      return w.tok_embeddings;
    case TensorRole::kFinalNorm:
      return w.final_norm.w;
    case TensorRole::kLmHead:
      return w.lm_head.w;
    case TensorRole::kAttnNorm:
      return L->attn_norm.w;
    case TensorRole::kWq:
      return L->wq.w;
    case TensorRole::kWk:
      return L->wk.w;
    case TensorRole::kWv:
      return L->wv.w;
    case TensorRole::kWo:
      return L->wo.w;
    case TensorRole::kBq:
      return L->wq.bias;
    case TensorRole::kBk:
      return L->wk.bias;
    case TensorRole::kBv:
      return L->wv.bias;
    case TensorRole::kFfnNorm:
      return L->ffn_norm.w;
    case TensorRole::kWGate:
      return L->w_gate.w;
    case TensorRole::kWUp:
      return L->w_up.w;
    case TensorRole::kWDown:
      return L->w_down.w;
    default:
      return nullptr;  // roles the Llama layout of these tests does not have
  }
}

// One tensor of a model: its HF name, shape and fp32 data.
struct NamedTensor {
  std::string name;  // with ".weight" / ".bias"
  std::vector<int64_t> shape;
  const float* data = nullptr;
  bool linear = false;
  size_t numel() const {
    size_t n = 1;
    for (int64_t d : shape) n *= static_cast<size_t>(d);
    return n;
  }
  // Module name (without ".weight").
  std::string module() const { return name.substr(0, name.size() - 7); }
};

std::vector<NamedTensor> named_tensors(const ModelWeights& w) {
  std::vector<NamedTensor> out;
  for (const TensorSpec& spec : find_arch(w.cfg.architecture)->tensors) {
    if (!tensor_present(spec, w.cfg)) continue;
    const bool per_layer = is_per_layer(spec.role);
    for (int l = 0; l < (per_layer ? w.cfg.n_layers : 1); ++l) {
      out.push_back({tensor_name(spec, l), expected_shape(spec, w.cfg),
                     role_data(w, spec.role, per_layer ? l : -1), is_linear_weight(spec.role)});
    }
  }
  return out;
}

// Writes `w` as a Hugging Face folder (F32 model.safetensors + config.json).
void write_model_folder(const std::string& dir, const ModelWeights& w) {
  fs::create_directories(dir);
  write_file_atomic(dir + "/config.json", to_hf_config_json(w.cfg));
  std::vector<TensorToWrite> ts;
  for (const NamedTensor& t : named_tensors(w)) {
    ts.push_back({t.name, DType::F32, t.shape, t.data, t.numel() * sizeof(float)});
  }
  write_safetensors(dir + "/model.safetensors", ts);
}

// A tiny untied Llama whose every linear fits the GPTQ layout at 4 bits, group 32.
test::TinyModelOptions tiny_opts() {
  test::TinyModelOptions o;
  o.dim = 64;
  o.hidden = 128;
  o.layers = 2;
  o.heads = 4;
  o.kv_heads = 2;
  o.vocab = 64;
  o.max_seq = 64;
  o.tied = false;
  o.seed = 5;
  return o;
}

// The tiny model with one planted group (layer 0 q_proj, row 0, columns 0..31) holding only
// positive weights: its asymmetric zero point rounds to 0, which GPTQ format v1 cannot store.
std::shared_ptr<ModelWeights> tiny_model_with_positive_group() {
  auto w = test::make_tiny_model(tiny_opts());
  float* q = const_cast<float*>(w->layers[0].wq.w);
  for (int i = 0; i < 32; ++i) q[i] = 0.05f + std::fabs(q[i]);
  return w;
}

using test::int_scheme;

QuantizeOptions rtn_options(const QuantScheme& s, const std::string& format, int version) {
  QuantizeOptions o;
  o.algo = QuantAlgo::kRtn;
  o.recipe = Recipe{s, {}};
  o.format = format;
  o.gptq_version = version;
  o.calibrate = false;
  return o;
}

json read_json(const std::string& path) {
  const std::string text = test::read_all(path);
  json j = json::parse(text, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << path;
  return j;
}

// Index of the first differing float (bitwise), -1 when equal.
int64_t first_difference(const float* a, const float* b, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (std::memcmp(a + i, b + i, sizeof(float)) != 0) return static_cast<int64_t>(i);
  }
  return -1;
}

#define EXPECT_SAME_FLOATS(a, b, n, what)                                             \
  do {                                                                                \
    const int64_t diff_at_ = first_difference((a), (b), (n));                         \
    EXPECT_EQ(diff_at_, -1) << (what) << ": first difference at " << diff_at_ << ": " \
                            << (diff_at_ >= 0 ? (a)[diff_at_] : 0.0f) << " vs "       \
                            << (diff_at_ >= 0 ? (b)[diff_at_] : 0.0f);                \
  } while (0)

// Names of the entries of a folder.
std::set<std::string> entries(const fs::path& dir) {
  std::set<std::string> s;
  for (const auto& e : fs::directory_iterator(dir)) s.insert(e.path().filename().string());
  return s;
}

// Expects `parent` to hold only `keep` (no "<out>.tmp.*" left behind).
void expect_only(const fs::path& parent, const std::set<std::string>& keep) {
  EXPECT_EQ(entries(parent), keep) << parent;
}

// Checks that every tensor of `loaded` equals `orig`'s, except linears, which equal
// expected(name, original data, out, in) bitwise.
void expect_loaded_weights(
    const ModelWeights& orig, const ModelWeights& loaded,
    const std::function<std::optional<QuantScheme>(const std::string&)>& scheme_of,
    const std::string& what) {
  const std::vector<NamedTensor> a = named_tensors(orig), b = named_tensors(loaded);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].name, b[i].name);
    ASSERT_EQ(a[i].shape, b[i].shape);
    const std::optional<QuantScheme> s = a[i].linear ? scheme_of(a[i].module()) : std::nullopt;
    if (!s) {
      EXPECT_SAME_FLOATS(b[i].data, a[i].data, a[i].numel(), what + " " + a[i].name + " (fp)");
      continue;
    }
    const int out = static_cast<int>(a[i].shape[0]), in = static_cast<int>(a[i].shape[1]);
    const std::vector<float> expect = quantize_rtn(a[i].data, out, in, *s).dequantize();
    EXPECT_SAME_FLOATS(b[i].data, expect.data(), expect.size(),
                       what + " " + a[i].name + " " + scheme_name(*s));
  }
}

// The folder loaded on the reference path (quantized linears dequantized to fp32), after checking
// that the default load (repacked into the kernels' compute layout) holds exactly the same weights.
std::shared_ptr<ModelWeights> load_weights(const std::string& dir) {
  RuntimeOptions reference;
  reference.repack = false;
  auto w = load_model(dir, "", /*load_tokenizer=*/false, reference).weights;
  auto packed = load_model(dir, "", /*load_tokenizer=*/false).weights;
  auto same = [](const Linear& ref, const Linear& p, const std::string& what) {
    if (p.packed == nullptr) {
      EXPECT_SAME_FLOATS(p.w, ref.w, static_cast<size_t>(ref.out) * ref.in, what);
      return;
    }
    EXPECT_EQ(p.w, nullptr) << what;
    const std::vector<float> d = p.packed->dequantize();
    EXPECT_SAME_FLOATS(d.data(), ref.w, d.size(), what + " (repacked)");
  };
  for (size_t l = 0; l < w->layers.size(); ++l) {
    const LayerWeights &a = w->layers[l], &b = packed->layers[l];
    same(a.wq, b.wq, "q");
    same(a.wk, b.wk, "k");
    same(a.wv, b.wv, "v");
    same(a.wo, b.wo, "o");
    same(a.w_gate, b.w_gate, "gate");
    same(a.w_up, b.w_up, "up");
    same(a.w_down, b.w_down, "down");
  }
  same(w->lm_head, packed->lm_head, "lm_head");
  return w;
}

// ---- a. RTN, GPTQ v1 ---------------------------------------------------------------------------

TEST(QuantizePipeline, RtnGptqV1FolderLoadsToTheRtnWeights) {
  TempDir dir("qp_v1");
  auto w = tiny_model_with_positive_group();
  const std::string model = dir / "model", out = dir / "out";
  write_model_folder(model, *w);
  const QuantScheme base = int_scheme(4, 32);
  const QuantizeReport rep = quantize_model(model, out, rtn_options(base, "gptq", 1));

  // The folder: configs, one shard per decoder layer + the final one, the index, the manifest
  // of what lowbit wrote; nothing else beside it.
  expect_only(dir.path, {"model", "out"});
  const std::set<std::string> files = entries(out);
  EXPECT_EQ(files, (std::set<std::string>{
                       ".lowbit-output", "config.json", "quantize_config.json",
                       "model.safetensors.index.json", "model-00001-of-00003.safetensors",
                       "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors"}));
  const json cfg = read_json(out + "/config.json");
  ASSERT_TRUE(cfg.contains("quantization_config"));
  const json& qc = cfg["quantization_config"];
  EXPECT_EQ(qc["quant_method"], "gptq");
  EXPECT_EQ(qc["checkpoint_format"], "gptq");
  EXPECT_EQ(qc["bits"], 4);
  EXPECT_EQ(qc["group_size"], 32);
  EXPECT_EQ(qc["sym"], false);
  EXPECT_EQ(qc["desc_act"], false);
  EXPECT_EQ(qc["lowbit_algo"], "rtn");
  EXPECT_FALSE(qc.contains("dynamic")) << qc.dump();
  // The input's config is kept.
  EXPECT_EQ(cfg["hidden_size"], 64);
  EXPECT_EQ(cfg["tie_word_embeddings"], false);
  ASSERT_TRUE(qc.contains("lowbit_modules"));
  const json& mods = qc["lowbit_modules"];
  EXPECT_EQ(mods.size(), 2u * 7 + 1);
  for (const auto& [name, e] : mods.items()) {
    if (name == "lm_head") {
      EXPECT_EQ(e["layout"], "fp");
      continue;
    }
    EXPECT_EQ(e["layout"], "gptq") << name;
    EXPECT_EQ(e["weight_type"], "int4") << name;
    EXPECT_EQ(e["group_size"], 32) << name;
    EXPECT_EQ(e["sym"], false) << name;
    EXPECT_EQ(e["scale_dtype"], "f16") << name;
  }
  // quantize_config.json: the same block without lowbit_modules.
  json expect_qcfg = qc;
  expect_qcfg.erase("lowbit_modules");
  EXPECT_EQ(read_json(out + "/quantize_config.json"), expect_qcfg);
  // The index maps each layer's tensors to its own shard.
  const json idx = read_json(out + "/model.safetensors.index.json");
  const json& wm = idx["weight_map"];
  EXPECT_EQ(wm["model.layers.0.self_attn.q_proj.qweight"], "model-00001-of-00003.safetensors");
  EXPECT_EQ(wm["model.layers.0.self_attn.q_proj.qzeros"], "model-00001-of-00003.safetensors");
  EXPECT_EQ(wm["model.layers.0.self_attn.q_proj.scales"], "model-00001-of-00003.safetensors");
  EXPECT_EQ(wm["model.layers.0.self_attn.q_proj.g_idx"], "model-00001-of-00003.safetensors");
  EXPECT_EQ(wm["model.layers.1.mlp.down_proj.qweight"], "model-00002-of-00003.safetensors");
  EXPECT_EQ(wm["model.layers.1.input_layernorm.weight"], "model-00002-of-00003.safetensors");
  EXPECT_EQ(wm["model.embed_tokens.weight"], "model-00003-of-00003.safetensors");
  EXPECT_EQ(wm["model.norm.weight"], "model-00003-of-00003.safetensors");
  EXPECT_EQ(wm["lm_head.weight"], "model-00003-of-00003.safetensors");
  EXPECT_FALSE(wm.contains("model.layers.0.self_attn.q_proj.weight"));
  // The shards hold exactly what the index says.
  {
    TensorStore store = TensorStore::open_dir(out);
    EXPECT_EQ(store.names().size(), wm.size());
    for (const auto& [name, file] : wm.items()) {
      const TensorInfo* t = store.find(name);
      ASSERT_NE(t, nullptr) << name;
      EXPECT_EQ(fs::path(t->file).filename().string(), file.get<std::string>()) << name;
    }
    EXPECT_EQ(store.find("model.layers.0.self_attn.q_proj.qweight")->dtype, DType::I32);
    EXPECT_EQ(store.find("model.layers.0.self_attn.q_proj.scales")->dtype, DType::F16);
  }
  EXPECT_TRUE(rep.fallbacks.empty());

  // Every linear loads as exactly RTN with zero points kept in [1, 15] (format v1).
  auto loaded = load_weights(out);
  QuantScheme v1 = base;
  v1.zero_from_one = true;
  expect_loaded_weights(
      *w, *loaded,
      [&](const std::string& n) -> std::optional<QuantScheme> {
        if (n == "lm_head") return std::nullopt;
        return v1;
      },
      "gptq v1");
  // The planted group is where zero_from_one matters: plain RTN would differ there.
  const std::vector<float> plain = quantize_rtn(w->layers[0].wq.w, 64, 64, base).dequantize();
  EXPECT_NE(first_difference(loaded->layers[0].wq.w, plain.data(), plain.size()), -1);
}

// ---- b. GPTQ v2, lowbit format, nf4 / fp4 / fp8 ------------------------------------------------

TEST(QuantizePipeline, RtnGptqV2AndLowbitFormatsLoadToTheRtnWeights) {
  auto w = tiny_model_with_positive_group();
  TempDir dir("qp_v2");
  const std::string model = dir / "model";
  write_model_folder(model, *w);
  struct Case {
    std::string name, format;
    int version;
    QuantScheme scheme;
    std::string quant_method, layout;
  };
  QuantScheme nf4 = int_scheme(4, 32), fp4 = int_scheme(4, 32), fp8 = int_scheme(8, 32);
  nf4.type = WeightType::kNF4;
  fp4.type = WeightType::kFP4;
  fp8.type = WeightType::kFP8E4M3;
  QuantScheme int4_f32 = int_scheme(4, 32);
  int4_f32.scale_type = ScaleType::kF32;
  QuantScheme int3_sym = int_scheme(3, 16, /*sym=*/true);
  QuantScheme e5m2 = int_scheme(8, 64), nf4_bf16 = nf4, int4_fp8 = int_scheme(4, 32);
  e5m2.type = WeightType::kFP8E5M2;
  nf4_bf16.scale_type = ScaleType::kBF16;
  int4_fp8.scale_type = ScaleType::kFP8E4M3;
  const std::vector<Case> cases = {
      {"gptq_v2", "gptq", 2, int_scheme(4, 32), "gptq", "gptq"},
      {"gptq_v1_sym", "gptq", 1, int_scheme(4, 32, true), "gptq", "gptq"},
      // --format lowbit: no GPTQ-layout linear, so a lowbit folder (GPTQ loaders could not load
      // it).
      {"lowbit_int4", "lowbit", 1, int_scheme(4, 32), "lowbit", "lowbit"},
      {"lowbit_int3_sym", "lowbit", 2, int3_sym, "lowbit", "lowbit"},
      {"nf4", "gptq", 1, nf4, "lowbit", "lowbit"},
      {"fp4", "gptq", 1, fp4, "lowbit", "lowbit"},
      {"fp8_e4m3", "lowbit", 1, fp8, "lowbit", "lowbit"},
      {"int4_f32_scales", "gptq", 1, int4_f32, "lowbit", "lowbit"},
      {"fp8_e5m2_g64", "gptq", 1, e5m2, "lowbit", "lowbit"},
      {"nf4_bf16_scales", "gptq", 2, nf4_bf16, "lowbit", "lowbit"},
      {"int4_fp8_scales", "lowbit", 1, int4_fp8, "lowbit", "lowbit"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string out = dir / ("out_" + c.name);
    const QuantizeReport rep =
        quantize_model(model, out, rtn_options(c.scheme, c.format, c.version));
    EXPECT_TRUE(rep.fallbacks.empty());
    const json qc = read_json(out + "/config.json")["quantization_config"];
    EXPECT_EQ(qc["quant_method"], c.quant_method);
    if (c.quant_method == "gptq") {
      EXPECT_EQ(qc["checkpoint_format"], c.version == 2 ? "gptq_v2" : "gptq");
      EXPECT_TRUE(fs::exists(out + "/quantize_config.json"));
    } else {
      EXPECT_EQ(qc["weight_type"], weight_type_name(c.scheme.type, c.scheme.bits));
      EXPECT_FALSE(fs::exists(out + "/quantize_config.json"));
    }
    for (const auto& [name, e] : qc["lowbit_modules"].items()) {
      EXPECT_EQ(e["layout"], name == "lm_head" ? "fp" : c.layout) << name;
    }
    for (const LayerReport& l : rep.layers) {
      if (l.name == "lm_head") continue;
      EXPECT_EQ(l.layout, c.layout) << l.name;
      EXPECT_EQ(l.scheme, scheme_name(c.scheme)) << l.name;
    }
    // v1 asymmetric GPTQ keeps zero points >= 1; nothing else does.
    QuantScheme expect = c.scheme;
    expect.zero_from_one = c.layout == "gptq" && c.version == 1 && !c.scheme.sym;
    auto loaded = load_weights(out);
    expect_loaded_weights(
        *w, *loaded,
        [&](const std::string& n) -> std::optional<QuantScheme> {
          if (n == "lm_head") return std::nullopt;
          return expect;
        },
        c.name);
  }
}

// ---- c. published GPTQ checkpoints (no lowbit_modules) --------------------------------------

// Rewrites config.json without quantization_config.lowbit_modules (and quantize_config.json's
// twin is already without it), as an AutoGPTQ / GPTQModel checkpoint has it.
void strip_lowbit_modules(const std::string& out) {
  const std::string path = out + "/config.json";
  nlohmann::ordered_json cfg = nlohmann::ordered_json::parse(test::read_all(path));
  ASSERT_TRUE(cfg["quantization_config"].contains("lowbit_modules"));
  cfg["quantization_config"].erase("lowbit_modules");
  cfg["quantization_config"].erase("lowbit_algo");
  write_file_atomic(path, cfg.dump(2) + "\n");
}

// Loads `out`, strips lowbit_modules, loads again: every tensor must be identical.
void expect_same_after_strip(const std::string& out, const std::string& what) {
  auto before = load_weights(out);
  strip_lowbit_modules(out);
  EXPECT_FALSE(read_json(out + "/config.json")["quantization_config"].contains("lowbit_modules"));
  std::shared_ptr<ModelWeights> after;
  try {
    after = load_weights(out);
  } catch (const Error& e) {
    FAIL() << what << ": loading without lowbit_modules failed: " << e.what();
  }
  const std::vector<NamedTensor> a = named_tensors(*before), b = named_tensors(*after);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].name, b[i].name);
    EXPECT_SAME_FLOATS(b[i].data, a[i].data, a[i].numel(), what + " " + a[i].name);
  }
}

TEST(QuantizePipeline, PublishedGptqWithoutLowbitModulesLoadsTheSameRtn) {
  auto w = tiny_model_with_positive_group();
  TempDir dir("qp_pub");
  const std::string model = dir / "model";
  write_model_folder(model, *w);
  for (int version : {1, 2}) {
    for (bool sym : {false, true}) {
      std::string name = "v";  // (not "v" + to_string(): GCC 12 -Wrestrict false positive)
      name += std::to_string(version);
      name += sym ? "_sym" : "_asym";
      SCOPED_TRACE(name);
      const std::string out = dir / name;
      // A recipe with an override, a skipped linear and a quantized lm_head, so that the
      // "dynamic" entries and lm_head flag carry the per-module differences.
      QuantizeOptions o = rtn_options(int_scheme(4, 32, sym), "gptq", version);
      o.recipe.rules.push_back(parse_override("*.mlp.down_proj:bits=8,group_size=-1"));
      o.recipe.rules.push_back(parse_override("model.layers.1.self_attn.k_proj:fp"));
      o.recipe.rules.push_back(parse_override("lm_head:bits=8"));
      quantize_model(model, out, o);
      const json qc = read_json(out + "/config.json")["quantization_config"];
      EXPECT_EQ(qc["lm_head"], true);
      EXPECT_TRUE(qc["dynamic"].contains("-:^model\\.layers\\.1\\.self_attn\\.k_proj$"))
          << qc["dynamic"].dump();
      expect_same_after_strip(out, name);
    }
  }
}

TEST(QuantizePipeline, PublishedGptqActOrderOnStories260K) {
  LOWBIT_SHARED_OR_SKIP(model, "models/stories260K-hf");
  TempDir dir("qp_pub_gptq");
  for (int version : {1, 2}) {
    SCOPED_TRACE(version);
    const std::string out = dir / ("v" + std::to_string(version));
    QuantizeOptions o;
    o.algo = QuantAlgo::kGptq;
    o.recipe = Recipe{int_scheme(4, 32), {}};
    o.format = "gptq";
    o.gptq_version = version;
    o.gptq.act_order = true;
    o.calib.text = "tinystories";
    o.calib.nsamples = 16;
    o.calib.seqlen = 128;
    const QuantizeReport rep = quantize_model(model, out, o);
    const json qc = read_json(out + "/config.json")["quantization_config"];
    EXPECT_EQ(qc["desc_act"], true);
    // The ragged MLP linears fell back (int8): "dynamic" entries carry them.
    EXPECT_FALSE(rep.fallbacks.empty());
    EXPECT_TRUE(qc.contains("dynamic"));
    // act-order permutes g_idx in at least one linear.
    {
      TensorStore store = TensorStore::open_dir(out);
      const TensorInfo* g = store.find("model.layers.0.self_attn.q_proj.g_idx");
      ASSERT_NE(g, nullptr);
      std::vector<int32_t> gi(64);
      ASSERT_EQ(g->nbytes, gi.size() * 4);
      std::memcpy(gi.data(), g->data, g->nbytes);
      bool trivial = true;
      for (int i = 0; i < 64; ++i) trivial = trivial && gi[size_t(i)] == i / 32;
      EXPECT_FALSE(trivial) << "act-order left g_idx in column order";
    }
    expect_same_after_strip(out, "gptq act-order v" + std::to_string(version));
  }
}

// ---- d. ragged shapes ------------------------------------------------------------------------

TEST(QuantizePipeline, RaggedShapesFallBackInGptqLayoutOnly) {
  LOWBIT_SHARED_OR_SKIP(model, "models/stories260K-hf");
  TempDir dir("qp_ragged");
  const QuantScheme base = int_scheme(4, 32);
  const std::string base_name = scheme_name(base);
  auto orig = load_weights(model);
  ASSERT_EQ(orig->cfg.hidden_dim, 172);
  const int n_layers = orig->cfg.n_layers;

  const std::string gptq_out = dir / "gptq";
  const QuantizeReport g = quantize_model(model, gptq_out, rtn_options(base, "gptq", 1));
  // gate/up [172, 64]: out·4 bits is not a multiple of 32 -> int8 g32; down [64, 172]: in is
  // neither a multiple of 32 columns nor of 8 codes -> int8 per-channel.
  EXPECT_EQ(g.fallbacks.size(), size_t(3 * n_layers));
  for (const std::string& f : g.fallbacks) EXPECT_NE(f.find(".mlp."), std::string::npos) << f;
  ASSERT_EQ(g.layers.size(), size_t(7 * n_layers));  // tied lm_head: no entry
  std::map<std::string, QuantScheme> expect;
  for (const LayerReport& l : g.layers) {
    const bool mlp = l.name.find(".mlp.") != std::string::npos;
    EXPECT_EQ(l.layout, "gptq") << l.name;
    if (!mlp) {
      EXPECT_EQ(l.scheme, base_name) << l.name;
      EXPECT_TRUE(l.note.empty()) << l.name;
      continue;
    }
    EXPECT_NE(l.scheme, base_name) << l.name;
    EXPECT_FALSE(l.note.empty()) << l.name;
    const bool down = l.name.find("down_proj") != std::string::npos;
    EXPECT_EQ(l.scheme, down ? "int8 per-channel asym f16-scales" : "int8 g32 asym f16-scales")
        << l.name;
  }
  const json qc = read_json(gptq_out + "/config.json")["quantization_config"];
  EXPECT_EQ(qc["dynamic"]["+:^model\\.layers\\.0\\.mlp\\.down_proj$"],
            (json{{"bits", 8}, {"group_size", -1}, {"sym", false}}));
  EXPECT_EQ(qc["dynamic"]["+:^model\\.layers\\.4\\.mlp\\.gate_proj$"],
            (json{{"bits", 8}, {"group_size", 32}, {"sym", false}}));
  auto lg = load_weights(gptq_out);
  expect_loaded_weights(
      *orig, *lg,
      [&](const std::string& n) -> std::optional<QuantScheme> {
        if (n == "lm_head") return std::nullopt;
        QuantScheme s = base;
        if (n.find("down_proj") != std::string::npos) {
          s = int_scheme(8, -1);
        } else if (n.find(".mlp.") != std::string::npos) {
          s = int_scheme(8, 32);
        }
        s.zero_from_one = true;
        return s;
      },
      "gptq ragged");

  const std::string lowbit_out = dir / "lowbit";
  const QuantizeReport lb = quantize_model(model, lowbit_out, rtn_options(base, "lowbit", 1));
  EXPECT_TRUE(lb.fallbacks.empty());
  ASSERT_EQ(lb.layers.size(), size_t(7 * n_layers));
  for (const LayerReport& l : lb.layers) {
    EXPECT_EQ(l.scheme, base_name) << l.name;
    EXPECT_EQ(l.layout, "lowbit") << l.name;
  }
  auto ll = load_weights(lowbit_out);
  expect_loaded_weights(
      *orig, *ll,
      [&](const std::string& n) -> std::optional<QuantScheme> {
        if (n == "lm_head") return std::nullopt;
        return base;
      },
      "lowbit ragged");
}

// ---- e. quality on the real model ------------------------------------------------------------

struct Quality {
  double kld = 0, top1 = 0, ppl_ratio = 0;
};

Quality quality(const std::shared_ptr<ModelWeights>& base, const std::string& qdir,
                const std::vector<int>& tokens, const WindowPlan& plan, int bos) {
  auto q = load_weights(qdir);
  Transformer a(base, plan.ctx), b(q, plan.ctx);
  const KldResult r = kl_divergence(a, b, tokens, plan, bos);
  return {r.kld_mean, r.top1_agreement, r.ppl_ratio};
}

TEST(QuantizePipeline, GptqAndAwqBeatRtnOnStories260K) {
  LOWBIT_SHARED_OR_SKIP(model, "models/stories260K-hf");
  LOWBIT_SHARED_OR_SKIP(text, "data/tinystories/tinystories-v1-valid-first500.txt");
  TempDir dir("qp_quality");
  const LoadedModel fp = load_model(model);
  const std::vector<int> toks =
      tokenize_for_convention(Convention::kGptq, *fp.tokenizer, load_text_set(text));
  const WindowPlan plan = plan_windows(Convention::kGptq, toks.size(), 256, /*limit=*/12);
  const int bos = fp.tokenizer->bos_id();
  const QuantScheme base = int_scheme(4, 32);

  auto run = [&](QuantAlgo algo, const std::string& name) {
    QuantizeOptions o;
    o.algo = algo;
    o.recipe = Recipe{base, {}};
    o.format = "lowbit";  // int4 g32 everywhere (no int8 fallbacks for the ragged MLP)
    o.calibrate = algo != QuantAlgo::kRtn;
    o.calib.text = "tinystories";
    o.calib.nsamples = 16;
    o.calib.seqlen = 128;
    const std::string out = dir / name;
    const QuantizeReport rep = quantize_model(model, out, o);
    if (o.calibrate) {
      EXPECT_EQ(rep.nsamples, 16);
      EXPECT_EQ(rep.seqlen, 128);
      EXPECT_NE(rep.calib_path.find("tinystories-v1-valid-calib.txt"), std::string::npos)
          << rep.calib_path;
      EXPECT_GE(rep.calib_text_tokens, 16 * 128);
      for (const LayerReport& l : rep.layers) {
        EXPECT_EQ(l.error_kind, "output") << l.name;
        EXPECT_GT(l.rel_error, 0.0) << l.name;
        EXPECT_LT(l.rel_error, 1.0) << l.name;
        if (algo == QuantAlgo::kAwq) {
          // stories260K has grouped-query attention (4 kv heads, 8 heads): o_proj's scales
          // cannot be folded into v_proj, so o_proj gets no AWQ scaling (as in the reference).
          if (l.name.find("o_proj") != std::string::npos) {
            EXPECT_EQ(l.awq_alpha, -1.0f) << l.name;
          } else {
            EXPECT_GE(l.awq_alpha, 0.0f) << l.name;
            EXPECT_LT(l.awq_alpha, 1.0f) << l.name;
          }
        }
      }
    }
    const Quality q = quality(fp.weights, out, toks, plan, bos);
    std::cout << "[ quality  ] " << name << ": mean KLD " << q.kld << ", top-1 " << q.top1
              << " %, PPL ratio " << q.ppl_ratio << "\n";
    return q;
  };
  const Quality rtn = run(QuantAlgo::kRtn, "rtn");
  const Quality gptq = run(QuantAlgo::kGptq, "gptq");
  const Quality awq = run(QuantAlgo::kAwq, "awq");
  // Measured (12 windows x 255 scored tokens, ctx 256; lowbit layout, int4 g32 everywhere):
  //   RTN  mean KLD 0.148, top-1 81.9 %, PPL ratio 1.174
  //   GPTQ mean KLD 0.085, top-1 86.1 %, PPL ratio 1.079
  //   AWQ  mean KLD 0.111, top-1 84.1 %, PPL ratio 1.109 (clip clamps |w| as the AWQ reference)
  EXPECT_LT(gptq.kld, 0.8 * rtn.kld);  // measured 0.57x
  EXPECT_LT(awq.kld, 0.9 * rtn.kld);   // measured 0.75x
  EXPECT_GT(gptq.top1, 75.0);
  EXPECT_GT(gptq.top1, rtn.top1);
  EXPECT_LT(gptq.kld, 0.2);
  EXPECT_GT(gptq.kld, 0.0);
  EXPECT_LT(gptq.ppl_ratio, 1.15);
}

// ---- f. the layer's steps -----------------------------------------------------------------------

// The quantizer runs the same layer steps as the forward pass (model/block.h); run back to back
// with the head, they give the Transformer's logits.
TEST(LayerSteps, AllStepsThenHeadEqualTheForwardPass) {
  for (bool bias : {false, true}) {
    SCOPED_TRACE(bias);
    test::TinyModelOptions o;
    o.dim = 32;
    o.hidden = 48;
    o.layers = 3;
    o.qkv_bias = bias;
    o.seed = bias ? 11 : 12;
    auto w = test::make_tiny_model(o);
    const ModelConfig& c = w->cfg;
    const int n = 24;
    std::vector<int> toks(n);
    for (int i = 0; i < n; ++i) toks[size_t(i)] = (i * 7 + 3) % c.vocab_size;
    std::vector<float> x(size_t(n) * c.dim), xn(size_t(n) * c.dim),
        att(size_t(n) * c.n_heads * c.head_dim), act(size_t(n) * c.hidden_dim);
    for (int t = 0; t < n; ++t) {
      std::copy_n(w->tok_embeddings + size_t(toks[size_t(t)]) * c.dim, c.dim,
                  &x[size_t(t) * c.dim]);
    }
    Block st(c);
    std::vector<float> cache(2 * size_t(n) * c.kv_dim()), a(size_t(n) * c.dim),
        m(size_t(n) * c.dim), mi(size_t(n) * c.dim);
    const KvView kv{cache.data(), cache.data() + cache.size() / 2, ops::KvKind::kF32};
    for (const LayerWeights& L : w->layers) {
      st.attn_in(L, x.data(), n, xn.data());
      st.attention(L, xn.data(), n, 0, kv, att.data());
      ops::linear(L.wo, att.data(), n, a.data());
      st.after_attention(L, x.data(), a.data(), n);
      st.mlp_act(L, st.mlp_in(L, x.data(), xn.data(), n, mi.data()), n, act.data());
      ops::linear(L.w_down, act.data(), n, m.data());
      st.after_mlp(L, x.data(), a.data(), m.data(), n);
    }
    ops::rmsnorm(x.data(), w->final_norm.w, xn.data(), n, c.dim, c.norm_eps);
    std::vector<float> logits(size_t(n) * c.vocab_size);
    ops::linear(w->lm_head, xn.data(), n, logits.data());

    Transformer tr(w, n);
    const float* ref = tr.forward(toks.data(), n, /*all_logits=*/true);
    double max_diff = 0;
    for (size_t i = 0; i < logits.size(); ++i) {
      max_diff = std::max(max_diff, double(std::fabs(logits[i] - ref[i])));
    }
    EXPECT_LT(max_diff, 1e-4);
    // And the logits are not trivially equal (e.g. all zero).
    EXPECT_GT(std::fabs(ref[0] - ref[1]) + std::fabs(ref[c.vocab_size] - ref[0]), 1e-3);

    // attn_in / mlp_in are the RMSNorms alone.
    std::vector<float> xs(size_t(n) * c.dim), p(size_t(n) * c.dim), b(size_t(n) * c.dim);
    for (size_t i = 0; i < xs.size(); ++i) xs[i] = float(i % 13) * 0.1f - 0.6f;
    st.attn_in(w->layers[0], xs.data(), n, p.data());
    ops::rmsnorm(xs.data(), w->layers[0].attn_norm.w, b.data(), n, c.dim, c.norm_eps);
    EXPECT_EQ(p, b);
    const float* q = st.mlp_in(w->layers[1], xs.data(), nullptr, n, p.data());
    EXPECT_EQ(q, p.data());
    ops::rmsnorm(xs.data(), w->layers[1].ffn_norm.w, b.data(), n, c.dim, c.norm_eps);
    EXPECT_EQ(p, b);
  }
}

TEST(LayerSteps, LayerTensorsViewPointsAtItsVectors) {
  auto w = test::make_tiny_model();
  const ModelConfig& c = w->cfg;
  LayerTensors T;
  T.attn_norm.assign(c.dim, 1.0f);
  T.ffn_norm.assign(c.dim, 2.0f);
  const int q_dim = c.n_heads * c.head_dim, kv_dim = c.n_kv_heads * c.head_dim;
  T.wq.assign(size_t(q_dim) * c.dim, 0.1f);
  T.wk.assign(size_t(kv_dim) * c.dim, 0.2f);
  T.wv.assign(size_t(kv_dim) * c.dim, 0.3f);
  T.wo.assign(size_t(c.dim) * q_dim, 0.4f);
  T.gate.assign(size_t(c.hidden_dim) * c.dim, 0.5f);
  T.up.assign(size_t(c.hidden_dim) * c.dim, 0.6f);
  T.down.assign(size_t(c.dim) * c.hidden_dim, 0.7f);
  const LayerWeights L = T.view(c);
  EXPECT_EQ(L.attn_norm.w, T.attn_norm.data());
  EXPECT_EQ(L.ffn_norm.w, T.ffn_norm.data());
  EXPECT_EQ(L.wq.w, T.wq.data());
  EXPECT_EQ(L.wq.out, q_dim);
  EXPECT_EQ(L.wk.out, kv_dim);
  EXPECT_EQ(L.wv.w, T.wv.data());
  EXPECT_EQ(L.wo.in, q_dim);
  EXPECT_EQ(L.w_gate.out, c.hidden_dim);
  EXPECT_EQ(L.w_up.w, T.up.data());
  EXPECT_EQ(L.w_down.in, c.hidden_dim);
  EXPECT_EQ(L.wq.bias, nullptr);  // empty bias vectors: no bias
}

// ---- g. the report -----------------------------------------------------------------------------

// Stored bytes of a GPTQ-layout linear: qweight, qzeros, f16 scales, g_idx.
double gptq_bits_per_weight(int bits, int group, int out, int in) {
  const int groups = group > 0 ? in / group : 1;
  const double bytes =
      double(in) * out * bits / 8 + double(groups) * out * bits / 8 + 2.0 * groups * out + 4.0 * in;
  return 8 * bytes / (double(out) * in);
}

TEST(QuantizeReport, JsonHasOneEntryPerLinearWithStoredBitsAndErrors) {
  auto w = test::make_tiny_model(tiny_opts());
  TempDir dir("qp_report");
  const std::string model = dir / "model", out = dir / "out";
  write_model_folder(model, *w);
  const QuantizeReport rep = quantize_model(model, out, rtn_options(int_scheme(4, 32), "gptq", 1));
  const json j = report_json(rep);
  EXPECT_EQ(j["algo"], "rtn");
  EXPECT_EQ(j["format"], "gptq");
  EXPECT_EQ(j["n_layers"], 2);
  EXPECT_EQ(j["model"], model);
  EXPECT_EQ(j["out"], out);
  EXPECT_GT(j["peak_rss_bytes"].get<int64_t>(), 0);
  EXPECT_GT(j["seconds"].get<double>(), 0.0);
  EXPECT_EQ(j["block_seconds"].size(), 2u);
  EXPECT_TRUE(j["fallbacks"].empty());
  EXPECT_TRUE(j["warnings"].empty());
  EXPECT_FALSE(j.contains("calibration"));  // no calibration data
  // out_bytes: the written folder's size (but the manifest, written as the folder is committed).
  int64_t bytes = 0;
  for (const auto& e : fs::directory_iterator(out)) {
    if (e.path().filename() != kManifestName) bytes += int64_t(e.file_size());
  }
  EXPECT_EQ(j["out_bytes"].get<int64_t>(), bytes);

  const json& layers = j["layers"];
  ASSERT_EQ(layers.size(), 2u * 7 + 1);
  std::set<std::string> names;
  int64_t qparams = 0;
  for (const json& l : layers) {
    const std::string name = l["name"];
    names.insert(name);
    if (name == "lm_head") {
      EXPECT_EQ(l["layout"], "fp");
      EXPECT_EQ(l["scheme"], "fp");
      EXPECT_EQ(l["bits_per_weight"], 32.0);  // F32 input
      continue;
    }
    EXPECT_EQ(l["layout"], "gptq") << name;
    EXPECT_EQ(l["scheme"], "int4 g32 asym f16-scales") << name;
    EXPECT_EQ(l["error_kind"], "weight") << name;
    const double bpw = l["bits_per_weight"], err = l["rel_error"];
    EXPECT_GT(bpw, 4.0) << name;
    EXPECT_LT(bpw, 6.0) << name;
    const int64_t params = l["params"];
    qparams += params;
    // params = out·in; bits/weight exactly the stored tensors' bits.
    int out_f = 0, in_f = 0;
    if (name.find("k_proj") != std::string::npos || name.find("v_proj") != std::string::npos) {
      out_f = 32, in_f = 64;
    } else if (name.find("gate_proj") != std::string::npos ||
               name.find("up_proj") != std::string::npos) {
      out_f = 128, in_f = 64;
    } else if (name.find("down_proj") != std::string::npos) {
      out_f = 64, in_f = 128;
    } else {
      out_f = 64, in_f = 64;
    }
    EXPECT_EQ(params, int64_t(out_f) * in_f) << name;
    EXPECT_NEAR(bpw, gptq_bits_per_weight(4, 32, out_f, in_f), 1e-9) << name;
    // Weight error of 4-bit RTN on Gaussian weights: around 0.1.
    EXPECT_GT(err, 0.0) << name;
    EXPECT_LT(err, 1.0) << name;
    EXPECT_LT(err, 0.3) << name;
  }
  EXPECT_EQ(names.size(), layers.size());
  EXPECT_TRUE(names.count("model.layers.1.mlp.down_proj"));
  EXPECT_EQ(j["quantized_params"].get<int64_t>(), qparams);
  EXPECT_EQ(j["fp_params"].get<int64_t>(), 64 * 64);
  EXPECT_GT(j["bits_per_weight"].get<double>(), 4.0);
  EXPECT_LT(j["bits_per_weight"].get<double>(), 6.0);

  // The text report: a row per linear and the warnings/fallbacks section.
  const std::string text = report_text(rep);
  for (const std::string& n : names) EXPECT_NE(text.find("| " + n + " "), std::string::npos) << n;
  EXPECT_NE(text.find("no calibration data"), std::string::npos);
}

TEST(QuantizeReport, RecipeRulesChangeSchemesLayoutsAndWarnings) {
  auto w = test::make_tiny_model(tiny_opts());
  TempDir dir("qp_rules");
  const std::string model = dir / "model", out = dir / "out";
  write_model_folder(model, *w);
  const QuantScheme base = int_scheme(4, 32);
  QuantizeOptions o = rtn_options(base, "gptq", 1);
  RecipeRule skip;
  skip.pattern = "*.mlp.down_proj";  // what --skip adds
  skip.skip = true;
  skip.fields = json::object();
  o.recipe.rules.push_back(skip);
  o.recipe.rules.push_back(parse_override("model.layers.1.self_attn.o_proj:bits=8,group_size=-1"));
  o.recipe.rules.push_back(parse_override("*.v_proj:weight_type=nf4"));
  o.recipe.rules.push_back(parse_override("model.layers.7.*:fp"));  // no such layer
  o.recipe.rules.push_back(parse_override("lm_head:bits=8"));
  const QuantizeReport rep = quantize_model(model, out, o);

  // The unmatched rule is a warning, and only it.
  ASSERT_EQ(rep.warnings.size(), 1u) << report_json(rep)["warnings"].dump();
  EXPECT_NE(rep.warnings[0].find("model.layers.7.*"), std::string::npos) << rep.warnings[0];
  EXPECT_NE(report_text(rep).find("warning: "), std::string::npos);
  EXPECT_NE(report_json(rep)["warnings"].dump().find("model.layers.7.*"), std::string::npos);

  std::map<std::string, LayerReport> by_name;
  for (const LayerReport& l : rep.layers) by_name[l.name] = l;
  ASSERT_EQ(by_name.size(), 15u);
  for (int l = 0; l < 2; ++l) {
    const std::string p = "model.layers." + std::to_string(l);
    EXPECT_EQ(by_name[p + ".mlp.down_proj"].layout, "fp");
    EXPECT_EQ(by_name[p + ".mlp.down_proj"].scheme, "fp");
    EXPECT_EQ(by_name[p + ".mlp.down_proj"].bits_per_weight, 32.0);
    EXPECT_EQ(by_name[p + ".self_attn.v_proj"].layout, "lowbit");
    EXPECT_EQ(by_name[p + ".self_attn.v_proj"].scheme, "nf4 g32 f16-scales");
    EXPECT_EQ(by_name[p + ".mlp.up_proj"].scheme, "int4 g32 asym f16-scales");
  }
  EXPECT_EQ(by_name["model.layers.1.self_attn.o_proj"].scheme, "int8 per-channel asym f16-scales");
  EXPECT_EQ(by_name["model.layers.1.self_attn.o_proj"].layout, "gptq");
  EXPECT_EQ(by_name["model.layers.0.self_attn.o_proj"].scheme, "int4 g32 asym f16-scales");
  EXPECT_EQ(by_name["lm_head"].scheme, "int8 g32 asym f16-scales");
  EXPECT_EQ(by_name["lm_head"].layout, "gptq");
  EXPECT_NEAR(by_name["lm_head"].bits_per_weight, gptq_bits_per_weight(8, 32, 64, 64), 1e-9);

  // config.json: a lowbit-layout linear (the nf4 v_proj) makes the folder a lowbit one (GPTQ
  // loaders could not load it), with every module's storage in lowbit_modules.
  const json qc = read_json(out + "/config.json")["quantization_config"];
  EXPECT_EQ(qc["quant_method"], "lowbit");
  EXPECT_FALSE(qc.contains("dynamic"));
  EXPECT_FALSE(fs::exists(out + "/quantize_config.json"));
  // Without the nf4 rule every quantized linear is GPTQ: a GPTQ folder whose per-module
  // differences are in "dynamic".
  {
    QuantizeOptions o2 = rtn_options(base, "gptq", 1);
    o2.recipe.rules = {skip, parse_override("model.layers.1.self_attn.o_proj:bits=8,group_size=-1"),
                       parse_override("lm_head:bits=8")};
    const std::string out2 = dir / "out2";
    quantize_model(model, out2, o2);
    const json qc2 = read_json(out2 + "/config.json")["quantization_config"];
    EXPECT_EQ(qc2["quant_method"], "gptq");
    EXPECT_TRUE(fs::exists(out2 + "/quantize_config.json"));
    const json& dyn = qc2["dynamic"];
    EXPECT_EQ(dyn["-:^model\\.layers\\.0\\.mlp\\.down_proj$"], json::object()) << dyn.dump();
    EXPECT_EQ(dyn["-:^model\\.layers\\.1\\.mlp\\.down_proj$"], json::object()) << dyn.dump();
    EXPECT_EQ(dyn["+:^model\\.layers\\.1\\.self_attn\\.o_proj$"],
              (json{{"bits", 8}, {"group_size", -1}, {"sym", false}}))
        << dyn.dump();
    EXPECT_FALSE(dyn.contains("+:^model\\.layers\\.0\\.self_attn\\.o_proj$"));
    EXPECT_EQ(dyn["+:^lm_head$"], (json{{"bits", 8}, {"group_size", 32}, {"sym", false}}));
    EXPECT_EQ(qc2["lm_head"], true);
  }
  const json& mods = qc["lowbit_modules"];
  EXPECT_EQ(mods["model.layers.0.mlp.down_proj"], (json{{"layout", "fp"}}));
  EXPECT_EQ(mods["model.layers.1.self_attn.v_proj"]["layout"], "lowbit");
  EXPECT_EQ(mods["model.layers.1.self_attn.v_proj"]["weight_type"], "nf4");
  EXPECT_EQ(mods["model.layers.1.self_attn.o_proj"]["weight_type"], "int8");
  EXPECT_EQ(mods["model.layers.1.self_attn.o_proj"]["group_size"], -1);
  // The skipped linears are stored as plain weights.
  {
    TensorStore store = TensorStore::open_dir(out);
    EXPECT_NE(store.find("model.layers.0.mlp.down_proj.weight"), nullptr);
    EXPECT_EQ(store.find("model.layers.0.mlp.down_proj.qweight"), nullptr);
    EXPECT_NE(store.find("lm_head.qweight"), nullptr);
    EXPECT_EQ(store.find("lm_head.weight"), nullptr);
  }

  // And the folder loads to exactly those schemes.
  auto loaded = load_weights(out);
  expect_loaded_weights(
      *w, *loaded,
      [&](const std::string& n) -> std::optional<QuantScheme> {
        if (n.find("down_proj") != std::string::npos) return std::nullopt;
        QuantScheme s = base;
        if (n.find("v_proj") != std::string::npos) {
          s.type = WeightType::kNF4;
          return s;
        }
        if (n == "model.layers.1.self_attn.o_proj") s = int_scheme(8, -1);
        if (n == "lm_head") s = int_scheme(8, 32);
        s.zero_from_one = true;
        return s;
      },
      "recipe");
}

// Regression: the report footer names the error kind of the quantized linears, not of the first
// linear (which may be kept in floating point).
TEST(QuantizeReport, ErrorKindFooterFollowsTheQuantizedLayers) {
  auto w = test::make_tiny_model(tiny_opts());
  TempDir dir("qp_footer");
  const std::string model = dir / "model", out = dir / "out";
  write_model_folder(model, *w);
  QuantizeOptions o = rtn_options(int_scheme(4, 32), "gptq", 1);
  o.recipe.rules.push_back(parse_override("model.layers.0.self_attn.q_proj:fp"));
  const QuantizeReport rep = quantize_model(model, out, o);
  ASSERT_FALSE(rep.layers.empty());
  EXPECT_EQ(rep.layers[0].name, "model.layers.0.self_attn.q_proj");
  EXPECT_EQ(rep.layers[0].layout, "fp");
  for (const LayerReport& l : rep.layers) {
    if (l.layout != "fp") {
      EXPECT_EQ(l.error_kind, "weight") << l.name;
    }
  }
  const std::string text = report_text(rep);
  EXPECT_NE(text.find("no calibration data"), std::string::npos) << text;
  EXPECT_EQ(text.find("on sampled calibration inputs"), std::string::npos) << text;
}

TEST(QuantizeReport, TiedLmHeadRuleIsAWarning) {
  test::TinyModelOptions opts = tiny_opts();
  opts.tied = true;
  auto w = test::make_tiny_model(opts);
  TempDir dir("qp_tied");
  const std::string model = dir / "model", out = dir / "out";
  write_model_folder(model, *w);
  QuantizeOptions o = rtn_options(int_scheme(4, 32), "gptq", 2);
  o.recipe.rules.push_back(parse_override("lm_head:bits=8"));
  const QuantizeReport rep = quantize_model(model, out, o);
  EXPECT_EQ(rep.layers.size(), 14u);  // no lm_head entry: it is the embeddings
  ASSERT_EQ(rep.warnings.size(), 1u);
  EXPECT_NE(rep.warnings[0].find("tied"), std::string::npos) << rep.warnings[0];
  auto loaded = load_weights(out);
  EXPECT_EQ(loaded->lm_head.w, loaded->tok_embeddings);
  EXPECT_SAME_FLOATS(loaded->tok_embeddings, w->tok_embeddings, size_t(64) * 64, "embeddings");
}

// ---- errors ---------------------------------------------------------------------------------

TEST(QuantizePipeline, ErrorsLeaveNoFolderBehind) {
  auto w = test::make_tiny_model(tiny_opts());
  TempDir dir("qp_err");
  const std::string model = dir / "model", out = dir / "out";
  write_model_folder(model, *w);
  auto expect_error = [&](const QuantizeOptions& o, const std::string& what) {
    try {
      quantize_model(model, out, o);
      ADD_FAILURE() << "expected an error naming " << what;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
    expect_only(dir.path, {"model"});
  };
  QuantizeOptions o = rtn_options(int_scheme(4, 32), "gptq", 1);
  o.format = "bnb";
  expect_error(o, "--format");
  o = rtn_options(int_scheme(4, 32), "gptq", 3);
  expect_error(o, "--gptq-version");
  o = rtn_options(int_scheme(4, 32), "gptq", 1);
  o.algo = QuantAlgo::kGptq;  // needs calibration
  expect_error(o, "calibration");
  o = rtn_options(int_scheme(5, 32), "gptq", 1);
  expect_error(o, "not 5");
  // Calibration needs a tokenizer; this folder has none.
  o = rtn_options(int_scheme(4, 32), "gptq", 1);
  o.calibrate = true;
  o.calib.nsamples = 2;
  o.calib.seqlen = 8;
  try {
    quantize_model(model, out, o);
    ADD_FAILURE() << "expected an error: no tokenizer";
  } catch (const Error&) {
  }
  expect_only(dir.path, {"model"});
  // A rule that makes an invalid scheme fails mid-run, and still leaves nothing.
  o = rtn_options(int_scheme(4, 32), "gptq", 1);
  RecipeRule bad;
  bad.pattern = "model.layers.1.*";
  bad.fields = {{"bits", 5}};
  o.recipe.rules.push_back(bad);
  expect_error(o, "model.layers.1.*");
  // An existing folder is kept unless force, and force replaces only a folder lowbit wrote.
  fs::create_directories(out);
  write_file_atomic(out + "/keep.txt", "x");
  o = rtn_options(int_scheme(4, 32), "gptq", 1);
  auto error_with = [&](const QuantizeOptions& opt) {
    try {
      quantize_model(model, out, opt);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_NE(error_with(o).find("already exists"), std::string::npos);
  o.force = true;
  EXPECT_NE(error_with(o).find("was not written by lowbit"), std::string::npos);
  EXPECT_TRUE(fs::exists(out + "/keep.txt"));
  fs::remove_all(out);
  quantize_model(model, out, o);  // a folder lowbit wrote ...
  EXPECT_TRUE(fs::exists(out + "/config.json"));
  quantize_model(model, out, o);              // ... is replaced with force
  write_file_atomic(out + "/keep.txt", "x");  // but not once it holds something else
  EXPECT_NE(error_with(o).find("holds files lowbit did not write (keep.txt)"), std::string::npos);
  EXPECT_TRUE(fs::exists(out + "/keep.txt"));
  expect_only(dir.path, {"model", "out"});
}

// Fields of the wrong JSON type in a checkpoint's quantization_config are one-line errors (found
// by fuzz/quantized_checkpoint_fuzz.cpp: a boolean quant_method escaped as a json::type_error).
TEST(QuantizedConfig, WrongJsonTypesAreErrors) {
  EXPECT_THROW(QuantizedCheckpointConfig::parse("c.json", json{{"quant_method", false}}), Error);
  EXPECT_THROW(QuantizedCheckpointConfig::parse("c.json", json::array()), Error);
  // A float where an int belongs (UBSan caught get<int>() casting 3.3e69 in the fuzzer).
  EXPECT_THROW(QuantizedCheckpointConfig::parse(
                   "c.json", json{{"quant_method", "gptq"}, {"bits", 3.3e69}, {"group_size", 32}}),
               Error);
  EXPECT_THROW(QuantizedCheckpointConfig::parse(
                   "c.json", json{{"quant_method", "gptq"}, {"bits", 4}, {"group_size", 1e10}}),
               Error);
  EXPECT_THROW(apply_scheme_fields("r", QuantScheme{}, json{{"bits", 4.5}}), Error);
  const json good = {{"quant_method", "gptq"}, {"bits", 4}, {"group_size", 32}, {"sym", true}};
  json bad_modules = good;
  bad_modules["lowbit_modules"] = {{"m", 7}};
  const auto c = QuantizedCheckpointConfig::parse("c.json", bad_modules);
  try {
    c.module("m", true);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("c.json"), std::string::npos) << e.what();
  }
  json bad_dynamic = good;
  bad_dynamic["dynamic"] = {{"+:(", json::object()}};  // not a valid regex
  EXPECT_THROW(QuantizedCheckpointConfig::parse("c.json", bad_dynamic), Error);
}

}  // namespace
}  // namespace lowbit
