// Every architecture against Hugging Face's own outputs (../shared/models/TINY-ARCHS.md): the tiny
// trained models of GPT-2, OPT, Bloom, Falcon, GPT-NeoX, GPT-J, Phi and the 256-wide Llama, each
// with a reference.json computed by transformers' modeling code. For each: the prompt ids, the
// last-position logits (max abs error < 1e-4), the 40-token greedy continuation (identical) and
// the perplexity of the reference's 20 windows (to 4 significant digits).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lowbit/eval/perplexity.h"
#include "lowbit/eval/text_sets.h"
#include "lowbit/eval/windows.h"
#include "lowbit/io/safetensors.h"
#include "lowbit/io/tensor_convert.h"
#include "lowbit/kernels/packed_matmul.h"
#include "lowbit/model/load.h"
#include "lowbit/model/sampler.h"
#include "lowbit/model/transformer.h"
#include "lowbit/quant/quantize_model.h"
#include "lowbit/tokenizer/tokenizer.h"
#include "lowbit/util/file.h"
#include "test_util.h"

namespace lowbit {
namespace {

using json = nlohmann::json;

struct Case {
  const char* folder;
  const char* architecture;
};

class ArchReference : public ::testing::TestWithParam<Case> {};

json reference(const std::string& dir) {
  return json::parse(test::read_all(dir + "/reference.json"));
}

TEST_P(ArchReference, LogitsGreedyAndPerplexityMatchTransformers) {
  const Case& k = GetParam();
  LOWBIT_SHARED_OR_SKIP(dir, std::string("models/") + k.folder);
  const json ref = reference(dir);
  const LoadedModel m = load_model(dir);
  EXPECT_EQ(m.weights->cfg.architecture, k.architecture);
  const int vocab = m.weights->cfg.vocab_size;

  for (const json& p : ref["prompts"]) {
    const std::string text = p["text"];
    SCOPED_TRACE(text);
    const std::vector<int> ids = m.tokenizer->encode(text, /*add_special=*/true);
    ASSERT_EQ(ids, p["ids"].get<std::vector<int>>());

    Transformer tf(m.weights, static_cast<int>(ids.size()) + 40);
    const float* logits = tf.forward(ids.data(), static_cast<int>(ids.size()));
    const std::vector<float> want = p["last_logits"].get<std::vector<float>>();
    ASSERT_EQ(static_cast<int>(want.size()), vocab);
    double max_err = 0;
    for (int i = 0; i < vocab; ++i) {
      max_err = std::max(max_err, std::fabs(double(logits[i]) - want[static_cast<size_t>(i)]));
    }
    EXPECT_LT(max_err, 1e-4) << "max |logit - reference|";
    std::cout << "[ reference ] " << k.folder << ": max |logit - transformers| " << max_err
              << " (prompt of " << ids.size() << " tokens)\n";
    EXPECT_EQ(argmax(logits, vocab), p["last_logits_argmax"].get<int>());

    // Greedy: 40 new tokens, as transformers' generate(do_sample=False).
    std::vector<int> got;
    for (int step = 0; step < 40; ++step) {
      const int next = argmax(logits, vocab);
      got.push_back(next);
      if (step + 1 < 40) logits = tf.forward(&next, 1);
    }
    EXPECT_EQ(got, p["greedy"]["new_ids"].get<std::vector<int>>());
  }

  // Perplexity: the eval text tokenized once without special tokens, the first 20
  // non-overlapping 256-token windows, positions 1..255 of each scored.
  const json& pj = ref["perplexity"];
  const std::string text = load_text_set("tinystories");
  const std::vector<int> tokens = m.tokenizer->encode(text, /*add_special=*/false);
  EXPECT_EQ(static_cast<int64_t>(tokens.size()), pj["text_tokens"].get<int64_t>());
  const WindowPlan plan = plan_windows(Convention::kGptq, static_cast<int64_t>(tokens.size()),
                                       pj["window"].get<int>(), pj["windows"].get<int64_t>());
  Transformer tf(m.weights, plan.ctx);
  const PplResult r = perplexity(tf, tokens, plan, m.tokenizer->bos_id());
  EXPECT_EQ(r.plan.tokens_scored(), pj["tokens_scored"].get<int64_t>());
  const double want = pj["ppl"].get<double>();
  EXPECT_EQ(fmt::format("{:.4g}", r.ppl), fmt::format("{:.4g}", want));
  EXPECT_LT(std::fabs(r.ppl - want) / want, 1e-5);
}

// The same perplexity from the command line: `lowbit eval ppl` with the reference's windows and
// its tokenization (no special tokens), printed to 4 significant digits.
TEST_P(ArchReference, EvalPplCommandReproducesTheReferencePerplexity) {
  const Case& k = GetParam();
  LOWBIT_SHARED_OR_SKIP(dir, std::string("models/") + k.folder);
  const json pj = reference(dir)["perplexity"];
  test::TempDir tmp("archppl");
  const std::string out = tmp / "ppl.json";
  const test::CliResult r =
      test::run_cli(fmt::format("eval ppl --model {} --text tinystories --ctx {} --limit {} "
                                "--no-special --json {}",
                                dir, pj["window"].get<int>(), pj["windows"].get<int64_t>(), out));
  ASSERT_EQ(r.rc, 0) << r.out;
  const json got = json::parse(test::read_all(out));
  const double want = pj["ppl"].get<double>();
  EXPECT_EQ(fmt::format("{:.4g}", got["ppl"].get<double>()), fmt::format("{:.4g}", want));
  std::cout << "[ reference ] " << k.folder << ": lowbit eval ppl " << got["ppl"].get<double>()
            << ", transformers " << want << "\n";
}

INSTANTIATE_TEST_SUITE_P(TinyModels, ArchReference,
                         ::testing::Values(Case{"gpt2-tiny", "GPT2LMHeadModel"},
                                           Case{"opt-tiny", "OPTForCausalLM"},
                                           Case{"bloom-tiny", "BloomForCausalLM"},
                                           Case{"falcon-tiny", "FalconForCausalLM"},
                                           Case{"gptneox-tiny", "GPTNeoXForCausalLM"},
                                           Case{"gptj-tiny", "GPTJForCausalLM"},
                                           Case{"phi-tiny", "PhiForCausalLM"},
                                           Case{"llama-256", "LlamaForCausalLM"}),
                         [](const ::testing::TestParamInfo<Case>& i) {
                           std::string n = i.param.folder;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

}  // namespace
}  // namespace lowbit

// ---- layouts without a shared model: built from the shared ones, checked by equivalences ------

namespace lowbit {
namespace {

namespace fs = std::filesystem;

// A model folder's tensors as fp32 (name -> shape, values).
struct Tensors {
  std::map<std::string, std::pair<std::vector<int64_t>, std::vector<float>>> t;
  const std::vector<float>& v(const std::string& n) const { return t.at(n).second; }
  void put(const std::string& n, std::vector<int64_t> shape, std::vector<float> values) {
    t[n] = {std::move(shape), std::move(values)};
  }
};

Tensors read_tensors(const std::string& dir) {
  Tensors out;
  auto f = SafetensorsFile::open(dir + "/model.safetensors");
  for (const TensorInfo& ti : f->tensors()) {
    std::vector<float> v(static_cast<size_t>(ti.numel()));
    tensor_to_f32(ti, v.data());
    out.put(ti.name, ti.shape, std::move(v));
  }
  return out;
}

void write_folder(const std::string& dir, const json& config, const Tensors& ts) {
  fs::create_directories(dir);
  write_file_atomic(dir + "/config.json", config.dump(2));
  std::vector<TensorToWrite> w;
  for (const auto& [name, sv] : ts.t) {
    w.push_back({name, DType::F32, sv.first, sv.second.data(), sv.second.size() * sizeof(float)});
  }
  write_safetensors(dir + "/model.safetensors", w);
}

// Rows [r0, r0 + n) of a [rows, cols] matrix.
std::vector<float> rows_of(const std::vector<float>& m, int cols, int r0, int n) {
  return {m.begin() + static_cast<ptrdiff_t>(r0) * cols,
          m.begin() + static_cast<ptrdiff_t>(r0 + n) * cols};
}

void append(std::vector<float>& dst, const std::vector<float>& src) {
  dst.insert(dst.end(), src.begin(), src.end());
}

// Max |a − b| of the last-position logits of two folders on the same tokens.
double logits_diff(const std::string& a, const std::string& b, const std::vector<int>& toks,
                   int vocab_compared = 0) {
  auto wa = load_model(a, "", false).weights, wb = load_model(b, "", false).weights;
  const int vocab = vocab_compared > 0 ? vocab_compared : wa->cfg.vocab_size;
  Transformer ta(wa, static_cast<int>(toks.size())), tb(wb, static_cast<int>(toks.size()));
  const float* la = ta.forward(toks.data(), static_cast<int>(toks.size()));
  std::vector<float> first(la, la + vocab);
  const float* lb = tb.forward(toks.data(), static_cast<int>(toks.size()));
  double d = 0;
  for (int i = 0; i < vocab; ++i) d = std::max(d, std::fabs(double(first[size_t(i)]) - lb[i]));
  EXPECT_GT(std::fabs(first[0] - first[1]), 1e-4);  // not trivially equal
  return d;
}

const std::vector<int> kToks = {1, 403, 407, 261, 378, 275, 12, 77, 300, 9, 43, 88};

// stories260K-hf with its kv heads repeated for every query head (GQA -> the equal MHA).
struct Mha {
  Tensors t;
  int dim, q_dim, hd, heads, kv_heads, layers;
};
Mha stories_as_mha(const std::string& src) {
  Mha m{read_tensors(src), 64, 64, 8, 8, 4, 5};
  const int group = m.heads / m.kv_heads;
  for (int l = 0; l < m.layers; ++l) {
    for (const char* p : {"k_proj", "v_proj"}) {
      const std::string n = fmt::format("model.layers.{}.self_attn.{}.weight", l, p);
      std::vector<float> full;
      for (int h = 0; h < m.heads; ++h) {
        append(full, rows_of(m.t.v(n), m.dim, (h / group) * m.hd, m.hd));
      }
      m.t.put(n, {m.q_dim, m.dim}, std::move(full));
    }
  }
  return m;
}

TEST(ArchLayouts, BaichuanWPackEqualsTheLlamaFolder) {
  LOWBIT_SHARED_OR_SKIP(src, "models/stories260K-hf");
  test::TempDir dir("baichuan");
  Mha m = stories_as_mha(src);
  Tensors b;
  json cfg = json::parse(test::read_all(src + "/config.json"));
  for (auto& [name, sv] : m.t.t) {
    if (name.find("k_proj") != std::string::npos || name.find("v_proj") != std::string::npos) {
      continue;
    }
    if (name.find("q_proj") != std::string::npos) {
      const std::string base = name.substr(0, name.find("q_proj"));
      std::vector<float> w = sv.second;
      append(w, m.t.v(base + "k_proj.weight"));
      append(w, m.t.v(base + "v_proj.weight"));
      b.put(base + "W_pack.weight", {3 * m.q_dim, m.dim}, std::move(w));
      continue;
    }
    b.put(name, sv.first, sv.second);
  }
  b.put("lm_head.weight", {512, 64}, m.t.v("model.embed_tokens.weight"));
  json bc = {{"architectures", {"BaiChuanForCausalLM"}},
             {"model_type", "baichuan"},
             {"hidden_size", 64},
             {"intermediate_size", cfg["intermediate_size"]},
             {"num_hidden_layers", 5},
             {"num_attention_heads", 8},
             {"vocab_size", 512},
             {"max_position_embeddings", 512},
             {"rms_norm_eps", cfg["rms_norm_eps"]},
             {"hidden_act", "silu"},
             {"tie_word_embeddings", false}};
  write_folder(dir / "b", bc, b);
  EXPECT_EQ(load_model(dir / "b", "", false).weights->cfg.qkv_layout, QkvLayout::kConcat);
  EXPECT_LT(logits_diff(src, dir / "b", kToks), 1e-5);

  // Baichuan2 (its 125696-token vocabulary) normalizes the lm_head rows: the same folder with
  // the vocabulary padded equals the Llama folder with normalized rows.
  std::vector<float> emb = m.t.v("model.embed_tokens.weight"), head = emb;
  emb.resize(size_t(125696) * 64, 0.0f);
  head.resize(size_t(125696) * 64, 0.5f);
  b.put("model.embed_tokens.weight", {125696, 64}, emb);
  b.put("lm_head.weight", {125696, 64}, head);
  bc["vocab_size"] = 125696;
  write_folder(dir / "b2", bc, b);
  EXPECT_TRUE(load_model(dir / "b2", "", false).weights->cfg.norm_head);
  Tensors l = read_tensors(src);
  std::vector<float> norm_head = m.t.v("model.embed_tokens.weight");
  l2_normalize_rows(norm_head.data(), 512, 64);
  l.put("lm_head.weight", {512, 64}, norm_head);
  json lc = cfg;
  lc["tie_word_embeddings"] = false;
  write_folder(dir / "l", lc, l);
  EXPECT_LT(logits_diff(dir / "l", dir / "b2", kToks, 512), 1e-5);
}

// stories260K-hf's q/k/v fused into Phi-3's qkv_proj, gate/up into gate_up_proj.
Tensors phi3_from_llama(const Tensors& s) {
  Tensors p;
  for (const auto& [name, sv] : s.t) {
    const auto at = [&](const char* k) { return name.find(k) != std::string::npos; };
    if (at("k_proj") || at("v_proj") || at("up_proj")) continue;
    if (at("q_proj")) {
      const std::string base = name.substr(0, name.find("q_proj"));
      std::vector<float> w = sv.second;
      append(w, s.v(base + "k_proj.weight"));
      append(w, s.v(base + "v_proj.weight"));
      p.put(base + "qkv_proj.weight", {64 + 32 + 32, 64}, std::move(w));
    } else if (at("gate_proj")) {
      const std::string base = name.substr(0, name.find("gate_proj"));
      std::vector<float> w = sv.second;
      append(w, s.v(base + "up_proj.weight"));
      p.put(base + "gate_up_proj.weight", {2 * sv.first[0], 64}, std::move(w));
    } else {
      p.put(name, sv.first, sv.second);
    }
  }
  return p;
}

TEST(ArchLayouts, Phi3FusedProjectionsEqualTheLlamaFolder) {
  LOWBIT_SHARED_OR_SKIP(src, "models/stories260K-hf");
  test::TempDir dir("phi3");
  json cfg = json::parse(test::read_all(src + "/config.json"));
  cfg["architectures"] = {"Phi3ForCausalLM"};
  cfg["model_type"] = "phi3";
  write_folder(dir / "p", cfg, phi3_from_llama(read_tensors(src)));
  const ModelConfig c = load_model(dir / "p", "", false).weights->cfg;
  EXPECT_TRUE(c.fused_gate_up);
  EXPECT_LT(logits_diff(src, dir / "p", kToks), 1e-5);
}

// `lowbit quantize` of a folder (W4 g32 asym in `format`; GPTQ calibrated on 8 x 128 TinyStories
// tokens), with stories260K-hf's tokenizer.json copied in for the calibration text.
std::string quantized(const std::string& model, const std::string& out, QuantAlgo algo,
                      const std::string& format) {
  const std::string tok = test::shared_dir() + "/models/stories260K-hf/tokenizer.json";
  if (!fs::exists(model + "/tokenizer.json")) fs::copy_file(tok, model + "/tokenizer.json");
  QuantizeOptions o;
  o.algo = algo;
  o.recipe = Recipe{test::int_scheme(4, 32), {}};
  o.calibrate = algo != QuantAlgo::kRtn;
  o.calib.text = "tinystories";
  o.calib.nsamples = 8;
  o.calib.seqlen = 128;
  o.format = format;
  // Layouts that compute the same function in a different order give fp32 activations equal to
  // ~1e-7, not bit for bit; rounded to bf16, a few of those differences flip a rounding and GPTQ's
  // sequential choices diverge from there. The equivalences below are about layouts, so fp32.
  o.calib_bf16 = false;
  quantize_model(model, out, o);
  return out;
}

// stories260K-hf as a Phi-3 folder (fused q/k/v and gate/up) with RoPE on the first half of each
// head in rotate-half pairs (partial_rotary_factor 0.5), and as a ChatGLM2 folder with the same
// weights: ChatGLM ropes the first half in interleaved pairs (2j, 2j+1), so its q/k rows are the
// Phi-3 rows reordered j -> 2j, j + r/2 -> 2j + 1 within each head's first r = 4 rows. Both folders
// compute the same logits; ChatGLM's multi-query groups (4 for 8 heads), fused [q|k|v] with its
// bias tensor, fused [gate|up] with SwiGLU and untied output_layer come with it.
TEST(ArchLayouts, ChatGlmEqualsPhi3WithHalfRotaryInRotateHalfPairs) {
  LOWBIT_SHARED_OR_SKIP(src, "models/stories260K-hf");
  test::TempDir dir("chatglm");
  const Tensors s = read_tensors(src);
  const json cfg = json::parse(test::read_all(src + "/config.json"));
  const int d = 64, hd = 8, heads = 8, kv = 4, layers = 5, r = hd / 2;
  const int hidden = cfg["intermediate_size"].get<int>();

  json pc = cfg;
  pc["architectures"] = {"Phi3ForCausalLM"};
  pc["model_type"] = "phi3";
  pc["partial_rotary_factor"] = 0.5;
  write_folder(dir / "phi3", pc, phi3_from_llama(s));
  EXPECT_EQ(load_model(dir / "phi3", "", false).weights->cfg.rope_dims, r);

  // Row i of a ChatGLM head holds the Phi-3 row from_phi3[i].
  std::vector<int> from_phi3(hd);
  for (int i = 0; i < hd; ++i) from_phi3[size_t(i)] = i;
  for (int j = 0; j < r / 2; ++j) {
    from_phi3[size_t(2 * j)] = j;
    from_phi3[size_t(2 * j + 1)] = j + r / 2;
  }
  auto reorder = [&](const std::vector<float>& w, int n_heads) {
    std::vector<float> out;
    for (int h = 0; h < n_heads; ++h) {
      for (int i = 0; i < hd; ++i) append(out, rows_of(w, d, h * hd + from_phi3[size_t(i)], 1));
    }
    return out;
  };
  Tensors g;
  const std::string L = "transformer.encoder.layers.";
  for (int l = 0; l < layers; ++l) {
    const std::string m = fmt::format("model.layers.{}.", l), t = L + std::to_string(l) + ".";
    std::vector<float> qkv = reorder(s.v(m + "self_attn.q_proj.weight"), heads);
    append(qkv, reorder(s.v(m + "self_attn.k_proj.weight"), kv));
    append(qkv, s.v(m + "self_attn.v_proj.weight"));
    g.put(t + "self_attention.query_key_value.weight", {(heads + 2 * kv) * hd, d}, qkv);
    g.put(t + "self_attention.query_key_value.bias", {(heads + 2 * kv) * hd},
          std::vector<float>(size_t(heads + 2 * kv) * hd, 0.0f));
    g.put(t + "self_attention.dense.weight", {d, heads * hd}, s.v(m + "self_attn.o_proj.weight"));
    std::vector<float> gate_up = s.v(m + "mlp.gate_proj.weight");
    append(gate_up, s.v(m + "mlp.up_proj.weight"));
    g.put(t + "mlp.dense_h_to_4h.weight", {2 * hidden, d}, gate_up);
    g.put(t + "mlp.dense_4h_to_h.weight", {d, hidden}, s.v(m + "mlp.down_proj.weight"));
    g.put(t + "input_layernorm.weight", {d}, s.v(m + "input_layernorm.weight"));
    g.put(t + "post_attention_layernorm.weight", {d}, s.v(m + "post_attention_layernorm.weight"));
  }
  g.put("transformer.embedding.word_embeddings.weight", {512, d}, s.v("model.embed_tokens.weight"));
  g.put("transformer.encoder.final_layernorm.weight", {d}, s.v("model.norm.weight"));
  g.put("transformer.output_layer.weight", {512, d}, s.v("model.embed_tokens.weight"));
  g.put("transformer.rotary_pos_emb.inv_freq", {r / 2}, std::vector<float>(size_t(r / 2), 1.0f));
  json gc = {{"architectures", {"ChatGLMModel"}},
             {"model_type", "chatglm"},
             {"hidden_size", d},
             {"ffn_hidden_size", hidden},
             {"num_layers", layers},
             {"num_attention_heads", heads},
             {"kv_channels", hd},
             {"multi_query_attention", true},
             {"multi_query_group_num", kv},
             {"padded_vocab_size", 512},
             {"seq_length", 512},
             {"layernorm_epsilon", cfg["rms_norm_eps"]},
             {"rmsnorm", true},
             {"add_qkv_bias", true},
             {"add_bias_linear", false},
             {"post_layer_norm", true},
             {"apply_residual_connection_post_layernorm", false},
             {"original_rope", true},
             {"rope_ratio", cfg["rope_theta"].get<double>() / 10000.0},
             {"eos_token_id", 2},
             {"pad_token_id", 0}};
  write_folder(dir / "glm", gc, g);
  const ModelConfig c = load_model(dir / "glm", "", false).weights->cfg;
  EXPECT_EQ(c.family, "chatglm");
  EXPECT_EQ(c.n_kv_heads, kv);
  EXPECT_EQ(c.rope_dims, r);
  EXPECT_TRUE(c.rope_interleaved);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_LT(logits_diff(dir / "phi3", dir / "glm", kToks), 1e-5);
  // The Phi-3 folder is not the Llama one (half the dims roped): the equality above says something.
  EXPECT_GT(logits_diff(src, dir / "phi3", kToks), 1e-3);

  // Quantized, the fused and reordered rows give the same model: RTN and GPTQ work row by row
  // on groups along the input, and q, k, v (gate, up) share one input, hence one Hessian. So the
  // ChatGLM folder quantizes to the Phi-3 folder's model, and that one to the Llama folder's
  // (the split and stacking of fused tensors in the quantizer and the GPTQ layout).
  json fc = cfg;  // Phi-3 layout, whole-head RoPE: the Llama folder's function
  fc["architectures"] = {"Phi3ForCausalLM"};
  fc["model_type"] = "phi3";
  write_folder(dir / "phi3full", fc, phi3_from_llama(s));
  for (QuantAlgo algo : {QuantAlgo::kRtn, QuantAlgo::kGptq}) {
    SCOPED_TRACE(quant_algo_name(algo));
    const std::string a = quant_algo_name(algo);
    // lowbit layout: the 172-row gate and up of the Llama folder stay int4 (the GPTQ layout,
    // which needs out % 8 == 0 for its packed zeros, would move them to int8; the fused 344 rows
    // fit). The Phi-3 and ChatGLM folders in the GPTQ layout.
    const std::string ql = quantized(src, dir / ("ql_" + a), algo, "lowbit");
    const std::string qf = quantized(dir / "phi3full", dir / ("qf_" + a), algo, "lowbit");
    const std::string qp = quantized(dir / "phi3", dir / ("qp_" + a), algo, "gptq");
    const std::string qg = quantized(dir / "glm", dir / ("qg_" + a), algo, "gptq");
    const double err = logits_diff(dir / "phi3", qp, kToks);
    EXPECT_GT(err, 1e-3);  // quantized: not the FP model
    EXPECT_LT(err, 3.0);   // measured 1.1 (RTN), 1.2 (GPTQ)
    // The same weights, layer by layer (dequantized; ChatGLM's q/k row order undone).
    RuntimeOptions rt;
    rt.repack = false;
    const auto wp = load_model(qp, "", false, rt).weights,
               wg = load_model(qg, "", false, rt).weights;
    for (int l = 0; l < layers; ++l) {
      const LayerWeights& a = wp->layers[size_t(l)];
      const LayerWeights& b = wg->layers[size_t(l)];
      auto w = [](const Linear& x, size_t n) { return std::vector<float>(x.w, x.w + n); };
      size_t same = 0, total = 0;
      auto cmp = [&](const std::vector<float>& x, const std::vector<float>& y) {
        ASSERT_EQ(x.size(), y.size());
        for (size_t i = 0; i < x.size(); ++i) same += x[i] == y[i];
        total += x.size();
      };
      cmp(reorder(w(a.wq, size_t(heads * hd * d)), heads), w(b.wq, size_t(heads * hd * d)));
      cmp(reorder(w(a.wk, size_t(kv * hd * d)), kv), w(b.wk, size_t(kv * hd * d)));
      cmp(w(a.wv, size_t(kv * hd * d)), w(b.wv, size_t(kv * hd * d)));
      cmp(w(a.wo, size_t(d * heads * hd)), w(b.wo, size_t(d * heads * hd)));
      cmp(w(a.w_gate, size_t(hidden * d)), w(b.w_gate, size_t(hidden * d)));
      cmp(w(a.w_up, size_t(hidden * d)), w(b.w_up, size_t(hidden * d)));
      cmp(w(a.w_down, size_t(d * hidden)), w(b.w_down, size_t(d * hidden)));
      // RTN: every weight. GPTQ: layer 0 too (its inputs are the same bits), later layers most:
      // their calibration inputs went through the reordered attention sums (and products of
      // other shapes: fused q/k/v), 1e-7 apart, and GPTQ's sequential choices may diverge at a
      // near-tie, more with each layer (seen on an AVX2 machine: layers 1-4 100, 99.9, 98.2,
      // 87.0 % equal; 100 % on an AVX-512 one). The function check that matters is the logits
      // one below.
      if (algo == QuantAlgo::kRtn || l == 0) {
        EXPECT_EQ(same, total) << "layer " << l;
      } else {
        EXPECT_GT(double(same), 0.75 * double(total)) << "layer " << l;
      }
    }
    // And the packed kernels run them alike. With fp32 activations: the int8 activations of the
    // default path round the 1e-7 differences of the reordered attention sums into whole steps
    // (seen on an AVX2 machine: 0.1 apart), which says nothing about the layouts.
    struct F32Activations {
      kernels::ActMode was = kernels::act_mode();
      F32Activations() { kernels::set_act_mode(kernels::ActMode::kF32); }
      ~F32Activations() { kernels::set_act_mode(was); }
    } f32_activations;
    EXPECT_LT(logits_diff(ql, qf, kToks), 1e-4);  // same row order: the same calibration bits
    if (algo == QuantAlgo::kRtn) {
      EXPECT_LT(logits_diff(qp, qg, kToks), 1e-4);
    } else {  // codes may diverge (above): closer to each other than either is to the FP model
      EXPECT_LT(logits_diff(qp, qg, kToks), 0.5 * err);
    }
  }

  // A non-zero q/k/v bias reaches the logits.
  Tensors gb = g;
  std::vector<float> bias(size_t(heads + 2 * kv) * hd, 0.0f);
  bias[size_t((heads + kv) * hd)] = 0.5f;  // v's first row
  gb.put(L + "0.self_attention.query_key_value.bias", {(heads + 2 * kv) * hd}, bias);
  write_folder(dir / "glmb", gc, gb);
  EXPECT_GT(logits_diff(dir / "glm", dir / "glmb", kToks), 1e-4);

  // ChatGLM-6B (v1) uses the same class names and is refused by name.
  json v1 = gc;
  v1.erase("padded_vocab_size");
  v1["vocab_size"] = 512;
  v1["position_encoding_2d"] = true;
  write_folder(dir / "v1", v1, g);
  const std::string e = test::error_of([&] { load_model(dir / "v1", "", false); });
  EXPECT_NE(e.find("ChatGLM-6B (v1, position_encoding_2d) is not supported"), std::string::npos)
      << e;
}

// ChatGLM2/3's tokenizer: its tokenizer.model plus special tokens numbered after the model's
// pieces, and "[gMASK]" "sop" before the text instead of BOS (tokenizer_config.json names the
// class). Built on babyllama-105's tok105.model.
TEST(ArchLayouts, ChatGlmTokenizerPutsGMaskSopFirst) {
  LOWBIT_SHARED_OR_SKIP(model, "models/babyllama-105/tok105.model");
  test::TempDir dir("glmtok");
  const std::string t = dir / "t";
  fs::create_directories(t);
  fs::copy_file(model, t + "/tokenizer.model");
  const auto plain = load_tokenizer(t);
  const int n = plain->vocab_size();
  const std::vector<int> body = plain->encode("Once upon a time", false);
  write_file_atomic(t + "/tokenizer_config.json",
                    R"({"tokenizer_class": "ChatGLMTokenizer", "padding_side": "left"})");
  const auto glm = load_tokenizer(t);
  EXPECT_EQ(glm->vocab_size(), n + 9);
  std::vector<int> want = {n + 1, n + 3};  // [gMASK], sop
  want.insert(want.end(), body.begin(), body.end());
  EXPECT_EQ(glm->encode("Once upon a time", true), want);
  EXPECT_EQ(glm->encode("Once upon a time", false), body);
  EXPECT_EQ(glm->decode(want, true), plain->decode(body, true));
  EXPECT_EQ(glm->decode({n + 1, n + 3}, false), "[gMASK]sop");
}
// falcon-tiny is multi-query (one kv head). Repeating that head for every query head gives an
// equal multi-head model, written in Falcon's per-head fused layout (multi_query false) and in
// Falcon-40b's grouped layout (new_decoder_architecture, one group per head, ln_attn = ln_mlp).
TEST(ArchLayouts, FalconMultiHeadAndGroupedLayoutsEqualMultiQuery) {
  LOWBIT_SHARED_OR_SKIP(src, "models/falcon-tiny");
  test::TempDir dir("falcon");
  const Tensors s = read_tensors(src);
  const int d = 128, hd = 32, heads = 4, layers = 4;
  Tensors per_head, grouped;
  for (const auto& [name, sv] : s.t) {
    if (name.find("query_key_value") != std::string::npos) {
      const std::vector<float>& w = sv.second;  // [q: 4x32 | k: 32 | v: 32]
      std::vector<float> fused;
      for (int h = 0; h < heads; ++h) {
        append(fused, rows_of(w, d, h * hd, hd));
        append(fused, rows_of(w, d, heads * hd, hd));
        append(fused, rows_of(w, d, heads * hd + hd, hd));
      }
      per_head.put(name, {3 * heads * hd, d}, fused);
      grouped.put(name, {3 * heads * hd, d}, fused);  // one q head per group: the same rows
    } else if (name.find("input_layernorm") != std::string::npos) {
      per_head.put(name, sv.first, sv.second);
      std::string ln_attn = name, ln_mlp = name;
      ln_attn.replace(name.find("input_layernorm"), 15, "ln_attn");
      ln_mlp.replace(name.find("input_layernorm"), 15, "ln_mlp");
      grouped.put(ln_attn, sv.first, sv.second);
      grouped.put(ln_mlp, sv.first, sv.second);
    } else {
      per_head.put(name, sv.first, sv.second);
      grouped.put(name, sv.first, sv.second);
    }
  }
  json cfg = json::parse(test::read_all(src + "/config.json"));
  cfg["multi_query"] = false;
  write_folder(dir / "mha", cfg, per_head);
  const ModelConfig a = load_model(dir / "mha", "", false).weights->cfg;
  EXPECT_EQ(a.qkv_layout, QkvLayout::kPerHead);
  EXPECT_EQ(a.n_kv_heads, heads);
  EXPECT_LT(logits_diff(src, dir / "mha", kToks), 1e-5);

  cfg["new_decoder_architecture"] = true;
  cfg["num_kv_heads"] = heads;
  write_folder(dir / "grouped", cfg, grouped);
  const ModelConfig g = load_model(dir / "grouped", "", false).weights->cfg;
  EXPECT_EQ(g.qkv_layout, QkvLayout::kGrouped);
  EXPECT_FALSE(g.shared_norm);
  EXPECT_LT(logits_diff(src, dir / "grouped", kToks), 1e-5);
  (void)layers;
}

// OPT with word_embed_proj_dim != hidden (OPT-350m's project_in/project_out): opt-tiny's
// embeddings widened with zero columns and identity-like projections give the same logits.
TEST(ArchLayouts, OptProjectionsEqualTheUnprojectedModel) {
  LOWBIT_SHARED_OR_SKIP(src, "models/opt-tiny");
  test::TempDir dir("opt");
  Tensors s = read_tensors(src);
  const int d = 128, p = 192;
  auto widen = [&](const std::string& n) {
    const auto& [shape, v] = s.t.at(n);
    std::vector<float> w(size_t(shape[0]) * p, 0.0f);
    for (int64_t r = 0; r < shape[0]; ++r) {
      std::copy_n(&v[size_t(r) * d], d, &w[size_t(r) * p]);
    }
    s.put(n, {shape[0], p}, std::move(w));
  };
  widen("model.decoder.embed_tokens.weight");
  widen("model.decoder.embed_positions.weight");
  std::vector<float> in(size_t(d) * p, 0.0f), out(size_t(p) * d, 0.0f);
  for (int i = 0; i < d; ++i) {
    in[size_t(i) * p + i] = 1.0f;   // project_in [d, p]: keeps the first d columns
    out[size_t(i) * d + i] = 1.0f;  // project_out [p, d]: puts them back
  }
  s.put("model.decoder.project_in.weight", {d, p}, in);
  s.put("model.decoder.project_out.weight", {p, d}, out);
  json cfg = json::parse(test::read_all(src + "/config.json"));
  cfg["word_embed_proj_dim"] = p;
  write_folder(dir / "proj", cfg, s);
  EXPECT_EQ(load_model(dir / "proj", "", false).weights->cfg.proj_dim, p);
  EXPECT_LT(logits_diff(src, dir / "proj", kToks), 1e-5);
}

// OPT-350m's post-norm blocks (do_layer_norm_before false: x = LN1(x + attn(x)),
// x = LN2(x + fc2(relu(fc1(x)))), no final norm), which no shared model has: opt-tiny's weights
// run as a post-norm model against a naive forward pass written here from OPT's modeling code.
std::vector<float> layer_norm_ref(const std::vector<float>& x, const std::vector<float>& g,
                                  const std::vector<float>& b) {
  const size_t n = x.size();
  double mean = 0, var = 0;
  for (float v : x) mean += v;
  mean /= double(n);
  for (float v : x) var += (v - mean) * (v - mean);
  var /= double(n);
  std::vector<float> y(n);
  for (size_t i = 0; i < n; ++i) {
    y[i] = static_cast<float>((x[i] - mean) / std::sqrt(var + 1e-5) * g[i] + b[i]);
  }
  return y;
}

std::vector<float> linear_ref(const std::vector<float>& W, const std::vector<float>& bias,
                              const std::vector<float>& x) {
  const size_t in = x.size(), out = W.size() / in;
  std::vector<float> y(out);
  for (size_t o = 0; o < out; ++o) {
    double acc = bias.empty() ? 0.0 : bias[o];
    for (size_t i = 0; i < in; ++i) acc += double(W[o * in + i]) * x[i];
    y[o] = static_cast<float>(acc);
  }
  return y;
}

TEST(ArchLayouts, OptPostNormEqualsANaiveForwardPass) {
  LOWBIT_SHARED_OR_SKIP(src, "models/opt-tiny");
  test::TempDir dir("optpost");
  const Tensors s = read_tensors(src);
  json cfg = json::parse(test::read_all(src + "/config.json"));
  cfg["do_layer_norm_before"] = false;
  write_folder(dir / "post", cfg, s);
  const ModelConfig c = load_model(dir / "post", "", false).weights->cfg;
  EXPECT_TRUE(c.post_norm);
  EXPECT_FALSE(c.final_norm);

  const int d = 128, heads = 4, hd = 32, layers = 4, vocab = 2048;
  const std::vector<int> toks = {2047, 5, 300, 17, 1024, 9, 77};
  const int n = static_cast<int>(toks.size());
  const std::string p = "model.decoder.";
  std::vector<std::vector<float>> x(static_cast<size_t>(n));
  for (int t = 0; t < n; ++t) {
    x[size_t(t)] = rows_of(s.v(p + "embed_tokens.weight"), d, toks[size_t(t)], 1);
    const std::vector<float> pos = rows_of(s.v(p + "embed_positions.weight"), d, t + 2, 1);
    for (int i = 0; i < d; ++i) x[size_t(t)][size_t(i)] += pos[size_t(i)];
  }
  for (int l = 0; l < layers; ++l) {
    const std::string L = fmt::format("{}layers.{}.", p, l);
    auto w = [&](const std::string& k) { return s.v(L + k); };
    std::vector<std::vector<float>> q, k, v;
    for (int t = 0; t < n; ++t) {
      q.push_back(
          linear_ref(w("self_attn.q_proj.weight"), w("self_attn.q_proj.bias"), x[size_t(t)]));
      k.push_back(
          linear_ref(w("self_attn.k_proj.weight"), w("self_attn.k_proj.bias"), x[size_t(t)]));
      v.push_back(
          linear_ref(w("self_attn.v_proj.weight"), w("self_attn.v_proj.bias"), x[size_t(t)]));
    }
    for (int t = 0; t < n; ++t) {
      std::vector<float> att(static_cast<size_t>(d), 0.0f);
      for (int h = 0; h < heads; ++h) {
        std::vector<double> sc(static_cast<size_t>(t + 1));
        double mx = -1e300, sum = 0;
        for (int j = 0; j <= t; ++j) {
          double dot = 0;
          for (int i = 0; i < hd; ++i)
            dot += double(q[size_t(t)][size_t(h * hd + i)]) * k[size_t(j)][size_t(h * hd + i)];
          sc[size_t(j)] = dot / std::sqrt(double(hd));
          mx = std::max(mx, sc[size_t(j)]);
        }
        for (double& e : sc) sum += (e = std::exp(e - mx));
        for (int i = 0; i < hd; ++i) {
          double acc = 0;
          for (int j = 0; j <= t; ++j)
            acc += sc[size_t(j)] / sum * v[size_t(j)][size_t(h * hd + i)];
          att[size_t(h * hd + i)] = static_cast<float>(acc);
        }
      }
      const std::vector<float> o =
          linear_ref(w("self_attn.out_proj.weight"), w("self_attn.out_proj.bias"), att);
      std::vector<float> r = x[size_t(t)];
      for (int i = 0; i < d; ++i) r[size_t(i)] += o[size_t(i)];
      const std::vector<float> h1 =
          layer_norm_ref(r, w("self_attn_layer_norm.weight"), w("self_attn_layer_norm.bias"));
      std::vector<float> f = linear_ref(w("fc1.weight"), w("fc1.bias"), h1);
      for (float& e : f) e = std::max(e, 0.0f);
      const std::vector<float> m = linear_ref(w("fc2.weight"), w("fc2.bias"), f);
      std::vector<float> r2 = h1;
      for (int i = 0; i < d; ++i) r2[size_t(i)] += m[size_t(i)];
      x[size_t(t)] = layer_norm_ref(r2, w("final_layer_norm.weight"), w("final_layer_norm.bias"));
    }
  }
  const std::vector<float> want =
      linear_ref(s.v(p + "embed_tokens.weight"), {}, x[size_t(n - 1)]);  // tied head

  auto wts = load_model(dir / "post", "", false).weights;
  Transformer tf(wts, n);
  const float* got = tf.forward(toks.data(), n);
  double err = 0;
  for (int i = 0; i < vocab; ++i) err = std::max(err, std::fabs(double(got[i]) - want[size_t(i)]));
  EXPECT_LT(err, 1e-3);
  // And it is not the pre-norm model's answer.
  Transformer pre(load_model(src, "", false).weights, n);
  const float* pre_logits = pre.forward(toks.data(), n);
  double diff = 0;
  for (int i = 0; i < vocab; ++i)
    diff = std::max(diff, std::fabs(double(pre_logits[i]) - want[size_t(i)]));
  EXPECT_GT(diff, 1e-1);
}

// Checkpoints saved from the base model have no "transformer." prefix (GPT-2 as published).
TEST(ArchLayouts, NamesWithoutTheBaseModelPrefixLoad) {
  LOWBIT_SHARED_OR_SKIP(src, "models/gpt2-tiny");
  test::TempDir dir("gpt2base");
  const Tensors s = read_tensors(src);
  Tensors t;
  for (const auto& [name, sv] : s.t) {
    t.put(name.rfind("transformer.", 0) == 0 ? name.substr(12) : name, sv.first, sv.second);
  }
  write_folder(dir / "g", json::parse(test::read_all(src + "/config.json")), t);
  // Not bit-exact: the thread count adapts to the machine's load between the two runs.
  EXPECT_LT(logits_diff(src, dir / "g", kToks), 1e-5);
}

// A fused tensor whose size does not split by the config is a one-line error naming it.
TEST(ArchLayouts, FusedTensorOfTheWrongSizeIsAnError) {
  LOWBIT_SHARED_OR_SKIP(src, "models/bloom-tiny");
  test::TempDir dir("bloombad");
  Tensors s = read_tensors(src);
  const std::string n = "transformer.h.0.self_attention.query_key_value.weight";
  s.put(n, {360, 128}, rows_of(s.v(n), 128, 0, 360));
  write_folder(dir / "b", json::parse(test::read_all(src + "/config.json")), s);
  const std::string e = test::error_of([&] { load_model(dir / "b", "", false); });
  EXPECT_NE(e.find(n), std::string::npos) << e;
  EXPECT_NE(e.find("[360,128], expected [384,128]"), std::string::npos) << e;
}

}  // namespace
}  // namespace lowbit
