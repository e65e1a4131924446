// The runtime on the quantized kernels: quantized checkpoints (from `lowbit quantize`) load
// repacked into the compute layout and give the same logits and perplexity as the reference path
// that dequantizes to fp32 at load; bf16 linears; the runtime flags of the CLI.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "lowbit/kernels/packed_matmul.h"
#include "lowbit/kernels/packed_weight.h"
#include "lowbit/model/load.h"
#include "lowbit/model/transformer.h"
#include "test_util.h"

namespace lowbit {
namespace {

using test::TempDir;

// Quantizes the shared stories260K model once per test binary run (RTN or GPTQ options `args`).
std::string quantized_model(const TempDir& dir, const std::string& name, const std::string& args) {
  const std::string out = dir / name;
  const auto r = test::run_cli("quantize --model " + test::shared_dir() +
                               "/models/stories260K-hf --out " + out + " " + args);
  EXPECT_EQ(r.rc, 0) << r.out;
  return out;
}

std::vector<float> logits_of(std::shared_ptr<ModelWeights> w, const std::vector<int>& tokens) {
  Transformer tf(w, static_cast<int>(tokens.size()));
  const float* l = tf.forward(tokens.data(), static_cast<int>(tokens.size()), true);
  return {l, l + tokens.size() * static_cast<size_t>(w->cfg.vocab_size)};
}

int packed_count(const ModelWeights& w) {
  int n = 0;
  for (const LayerWeights& L : w.layers) {
    for (const Linear* l : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) {
      n += l->packed != nullptr && l->w == nullptr;
    }
  }
  return n;
}

struct ActGuard {
  kernels::ActMode saved = kernels::act_mode();
  ~ActGuard() { kernels::set_act_mode(saved); }
};

void check_repacked_matches_reference(const std::string& model) {
  RuntimeOptions ref_opt, packed_opt;
  ref_opt.repack = false;
  auto ref = load_model(model, "", false, ref_opt).weights;
  auto packed = load_model(model, "", false, packed_opt).weights;
  EXPECT_EQ(packed_count(*ref), 0);
  EXPECT_EQ(packed_count(*packed), 7 * packed->cfg.n_layers);
  std::vector<int> tokens;
  for (int i = 0; i < 40; ++i) tokens.push_back((i * 37 + 11) % packed->cfg.vocab_size);
  const std::vector<float> want = logits_of(ref, tokens);
  ActGuard guard;
  kernels::set_act_mode(kernels::ActMode::kF32);
  EXPECT_LT(test::max_rel_err(logits_of(packed, tokens), want), 1e-4);
  kernels::set_act_mode(kernels::ActMode::kInt8);
  const double e8 = test::max_rel_err(logits_of(packed, tokens), want);
  EXPECT_LT(e8, 5e-2);  // int8 activations: close, not equal
  EXPECT_GT(e8, 0.0);
  // Decode one token at a time gives the prefill's last logits.
  kernels::set_act_mode(kernels::ActMode::kF32);
  Transformer tf(packed, static_cast<int>(tokens.size()));
  const float* last = nullptr;
  for (int t : tokens) last = tf.forward(&t, 1);
  const size_t v = static_cast<size_t>(packed->cfg.vocab_size);
  const std::vector<float> tail(want.end() - static_cast<long>(v), want.end());
  EXPECT_LT(test::max_rel_err(std::vector<float>(last, last + v), tail), 1e-4);
}

TEST(Runtime, RepackedGptqMatchesDequantizedReference) {
  LOWBIT_SHARED_OR_SKIP(model, "models/stories260K-hf");
  TempDir dir("runtime_gptq");
  check_repacked_matches_reference(
      quantized_model(dir, "q", "--algo rtn --bits 4 --group-size 32"));
}

TEST(Runtime, RepackedActOrderAndInt8Match) {
  LOWBIT_SHARED_OR_SKIP(model, "models/stories260K-hf");
  TempDir dir("runtime_actorder");
  const std::string q = quantized_model(
      dir, "q",
      "--algo gptq --bits 4 --group-size 32 --act-order --calib tinystories --nsamples 4 "
      "--seqlen 64");
  auto w = load_model(q, "", false, RuntimeOptions{}).weights;
  ASSERT_NE(w->layers[0].wq.packed, nullptr);
  EXPECT_FALSE(w->layers[0].wq.packed->perm.empty());  // act-order kept as a column order
  check_repacked_matches_reference(q);
  const std::string q8 = quantized_model(dir, "q8", "--algo rtn --bits 8 --group-size -1 --sym");
  check_repacked_matches_reference(q8);
  auto w8 = load_model(q8, "", false, RuntimeOptions{}).weights;
  EXPECT_EQ(w8->layers[0].w_up.packed->kind, kernels::PackedKind::kInt8);
}

TEST(Runtime, Bf16LinearsAreCloseToFp32) {
  LOWBIT_SHARED_OR_SKIP(model, "models/stories260K-hf");
  RuntimeOptions bf;
  bf.bf16_linears = true;
  auto f32 = load_model(model, "", false, RuntimeOptions{}).weights;
  auto b16 = load_model(model, "", false, bf).weights;
  EXPECT_EQ(packed_count(*b16), 7 * b16->cfg.n_layers);
  ASSERT_NE(b16->lm_head.packed, nullptr);  // tied lm_head gets its own bf16 copy
  EXPECT_EQ(b16->lm_head.packed->kind, kernels::PackedKind::kBF16);
  std::vector<int> tokens;
  for (int i = 0; i < 20; ++i) tokens.push_back((i * 13 + 5) % f32->cfg.vocab_size);
  const double e = test::max_rel_err(logits_of(b16, tokens), logits_of(f32, tokens));
  EXPECT_LT(e, 3e-2);
  EXPECT_GT(e, 0.0);
}

std::string ppl_of(const std::string& out) {
  std::smatch m;
  static const std::regex re("perplexity:\\s+([0-9.]+)");
  return std::regex_search(out, m, re) ? m[1].str() : "(none)";
}

// The acceptance check: eval on the kernels = eval on the dequantized reference.
TEST(Runtime, EvalPerplexityEqualsReference) {
  LOWBIT_SHARED_OR_SKIP(model, "models/stories260K-hf");
  TempDir dir("runtime_ppl");
  const std::string q = quantized_model(dir, "q", "--algo rtn --bits 4 --group-size 32");
  const std::string base = "eval ppl --model " + q + " --text tinystories --limit 8";
  const auto ref = test::run_cli(base + " --dequantize");
  const auto kern = test::run_cli(base);
  const auto int8 = test::run_cli(base + " --act int8");
  ASSERT_EQ(ref.rc, 0) << ref.out;
  ASSERT_EQ(kern.rc, 0) << kern.out;
  ASSERT_EQ(int8.rc, 0) << int8.out;
  EXPECT_EQ(ppl_of(kern.out), ppl_of(ref.out));
  const double p_ref = std::stod(ppl_of(ref.out)), p8 = std::stod(ppl_of(int8.out));
  EXPECT_NEAR(p8, p_ref, 0.02 * p_ref);
}

TEST(Runtime, BadRuntimeFlagsAreOneLineErrors) {
  LOWBIT_SHARED_OR_SKIP(model, "models/stories260K-hf");
  for (const auto& [flag, what] :
       {std::pair{"--fp-weights f8", "--fp-weights"}, std::pair{"--act int4", "--act"},
        std::pair{"--isa sse", "--isa"}}) {
    const auto r = test::run_cli(std::string("generate --model ") + model + " -n 2 " + flag);
    EXPECT_EQ(r.rc, 2) << r.out;
    EXPECT_NE(r.out.find(std::string("lowbit: ") + what), std::string::npos) << r.out;
    std::string out = r.out;
    while (!out.empty() && out.front() == '\n') out.erase(0, 1);
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << r.out;
  }
}

}  // namespace
}  // namespace lowbit

namespace lowbit {
namespace {

// `lowbit bench --kernels`: one row per linear role, 1 row and -p rows, int8 and f32 activations
// for quantized weights, with positive rates; pp/tg bench reports the weights as held in memory.
TEST(Runtime, BenchKernelsModeAndQuantizedSizes) {
  LOWBIT_SHARED_OR_SKIP(model, "models/stories260K-hf");
  TempDir dir("runtime_bench");
  const std::string q = quantized_model(dir, "q", "--algo rtn --bits 4 --group-size 32");
  const auto r =
      test::run_cli("bench --kernels --model " + q + " -p 8 -t 1 --json " + dir.sub("k.json"));
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto j = nlohmann::json::parse(test::read_all(dir.sub("k.json")));
  std::set<std::string> roles;
  int int8_rows = 0, f32_rows = 0;
  for (const auto& k : j["kernels"]) {
    roles.insert(k["role"].get<std::string>());
    EXPECT_GT(k["gbs"].get<double>(), 0.0);
    EXPECT_GT(k["gops"].get<double>(), 0.0);
    EXPECT_TRUE(k["m"] == 1 || k["m"] == 8);
    if (k["role"] != "lm_head") (k["act"] == "int8" ? int8_rows : f32_rows)++;
  }
  EXPECT_EQ(roles.size(), 8u);  // 7 per-layer roles + lm_head
  EXPECT_EQ(int8_rows, 14);
  EXPECT_EQ(f32_rows, 14);
  for (const std::string& extra : {std::string(""), std::string(" --dequantize")}) {
    const auto b = test::run_cli("bench --model " + q + " -p 16 -n 4 -r 1 -t 1 --no-probe --json " +
                                 dir.sub("b.json") + extra);
    ASSERT_EQ(b.rc, 0) << b.out;
    const auto bj = nlohmann::json::parse(test::read_all(dir.sub("b.json")));
    const std::string weights = bj["weights"];
    if (extra.empty()) {
      EXPECT_NE(weights.find("int4 g32"), std::string::npos) << weights;
      EXPECT_LT(bj["decode_bytes_per_token"].get<double>(), 0.6e6);
    } else {
      EXPECT_EQ(weights, "fp32; lm_head fp32");
      EXPECT_GT(bj["decode_bytes_per_token"].get<double>(), 0.9e6);
    }
  }
}

}  // namespace
}  // namespace lowbit
