// Weight + activation quantization end to end on a real trained model (babyllama-105-hf):
// `quantize` with int8 activations per token, per tensor (static, calibrated) and with
// SmoothQuant writes folders whose modules carry their activation scheme (and static scales);
// loading them puts each scheme on the packed linears the kernels run; the KLD against the FP
// model has the expected shape (static per-tensor is worst, SmoothQuant repairs part of it,
// per-token is close to weight-only); a corrupted activation entry is a one-line error.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "lowbit/eval/kld.h"
#include "lowbit/eval/text_sets.h"
#include "lowbit/eval/windows.h"
#include "lowbit/kernels/packed_matmul.h"
#include "lowbit/kernels/packed_weight.h"
#include "lowbit/model/load.h"
#include "lowbit/model/transformer.h"
#include "lowbit/quant/quantize_model.h"
#include "test_util.h"

namespace lowbit {
namespace {

using test::TempDir;

TEST(W8A8, SchemesSaveLoadAndOrderAsExpected) {
  LOWBIT_SHARED_OR_SKIP(model, "models/babyllama-105-hf");
  LOWBIT_SHARED_OR_SKIP(text, "data/tinystories/tinystories-v1-valid-first500.txt");
  TempDir dir("w8a8");
  const LoadedModel fp = load_model(model);
  const std::vector<int> toks =
      tokenize_for_convention(Convention::kGptq, *fp.tokenizer, load_text_set(text));
  const WindowPlan plan = plan_windows(Convention::kGptq, toks.size(), 256, /*limit=*/16);
  struct Run {
    const char* name;
    std::optional<ActGranularity> act;
    bool sym;
    float alpha;  // < 0: no SmoothQuant
  };
  std::map<std::string, double> kld;
  for (const Run& r :
       {Run{"w8a16", std::nullopt, true, -1}, Run{"token", ActGranularity::kToken, true, -1},
        Run{"token_asym", ActGranularity::kToken, false, -1},
        Run{"tensor", ActGranularity::kTensor, true, -1},
        Run{"tensor_sq", ActGranularity::kTensor, true, 0.5f}}) {
    SCOPED_TRACE(r.name);
    QuantizeOptions o;
    o.algo = QuantAlgo::kRtn;
    o.recipe = Recipe{test::int_scheme(8, -1, /*sym=*/true), {}};
    o.calib.text = "tinystories";
    o.calib.nsamples = 16;
    o.calib.seqlen = 128;
    if (r.act) {
      ActScheme a;
      a.quantized = true;
      a.granularity = *r.act;
      a.sym = r.sym;
      o.act = a;
      o.skip_act = {"*.mlp.down_proj"};
    }
    if (r.alpha >= 0) {
      SmoothOptions so;
      so.alpha = r.alpha;
      o.smooth = so;
    }
    const std::string out = dir / r.name;
    const QuantizeReport rep = quantize_model(model, out, o);
    const LoadedModel q = load_model(out);
    const LayerWeights& L0 = q.weights->layers[0];
    ASSERT_NE(L0.wq.packed, nullptr);
    ASSERT_NE(L0.w_down.packed, nullptr);
    if (!r.act) {
      EXPECT_FALSE(L0.wq.packed->act.has_value());
    } else {
      ASSERT_TRUE(L0.wq.packed->act.has_value());
      const ActScheme& a = *L0.wq.packed->act;
      EXPECT_TRUE(a.quantized);
      EXPECT_EQ(a.granularity, *r.act);
      EXPECT_EQ(a.sym, r.sym);
      EXPECT_EQ(L0.wq.packed->row_sums.empty(), r.sym);
      // --skip-act: the down projection's input stays float.
      ASSERT_TRUE(L0.w_down.packed->act.has_value());
      EXPECT_FALSE(L0.w_down.packed->act->quantized);
      if (*r.act == ActGranularity::kTensor) {
        const LayerReport* row = nullptr;
        for (const LayerReport& l : rep.layers)
          if (l.name == "model.layers.0.self_attn.q_proj") row = &l;
        ASSERT_NE(row, nullptr);
        EXPECT_GT(row->act_scale, 0.0f);
        // The output error with int8 inputs includes the weight error and more.
        EXPECT_GT(row->rel_error_act, row->rel_error);
        EXPECT_EQ(a.scale, row->act_scale);  // saved and read back exactly (F32)
        EXPECT_NEAR(row->act_scale * 127.0f,
                    row->act_absmax_smoothed >= 0 ? row->act_absmax_smoothed : row->act_absmax,
                    1e-5);
      }
    }
    Transformer base(fp.weights, plan.ctx), tq(q.weights, plan.ctx);
    if (!r.act) kernels::set_act_mode(kernels::ActMode::kF32);  // W8A16: float activations
    kld[r.name] = kl_divergence(base, tq, toks, plan, fp.tokenizer->bos_id()).kld_mean;
    kernels::set_act_mode(kernels::ActMode::kAuto);
    std::cout << "[ w8a8     ] " << r.name << ": mean KLD " << kld[r.name] << "\n";
  }
  EXPECT_GT(kld["tensor"], kld["token"]);
  EXPECT_LT(kld["tensor_sq"], kld["tensor"]);
  EXPECT_GT(kld["token"], kld["w8a16"]);
  EXPECT_LT(kld["token"], 10 * kld["w8a16"]);
}

TEST(W8A8, CorruptActivationEntryIsAOneLineError) {
  LOWBIT_SHARED_OR_SKIP(model, "models/stories260K-hf");
  TempDir dir("w8a8_bad");
  const std::string out = dir / "q";
  const test::CliResult q =
      test::run_cli("quantize --model " + model + " --out " + out +
                    " --algo rtn --bits 8 -g -1 --sym --act int8 "
                    "--act-static --calib tinystories --nsamples 2 --seqlen 64");
  ASSERT_EQ(q.rc, 0) << q.out;
  const std::string cfg_path = out + "/config.json";
  nlohmann::json cfg = nlohmann::json::parse(std::ifstream(cfg_path));
  auto& mods = cfg["quantization_config"]["lowbit_modules"];
  std::string victim;
  for (auto it = mods.begin(); it != mods.end(); ++it)
    if (it.value().contains("act")) victim = it.key();
  ASSERT_FALSE(victim.empty());
  mods[victim]["act"]["granularity"] = "row";
  std::ofstream(cfg_path) << cfg.dump(2);
  const test::CliResult r =
      test::run_cli("eval ppl --model " + out + " --text tinystories --limit 1");
  EXPECT_EQ(r.rc, 2) << r.out;
  EXPECT_NE(r.out.find("unknown activation granularity 'row'"), std::string::npos) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
}

}  // namespace
}  // namespace lowbit

namespace lowbit {
namespace {

std::vector<float> logits_of(const LoadedModel& m, int n) {
  std::vector<int> toks(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i)
    toks[static_cast<size_t>(i)] = (i * 17 + 3) % m.weights->cfg.vocab_size;
  Transformer t(m.weights, n);
  const float* l = t.forward(toks.data(), n, true);
  return std::vector<float>(l, l + static_cast<size_t>(n) * m.weights->cfg.vocab_size);
}

// compressed-tensors (int-quantized, what vLLM loads for W8A8): the same quantization written in
// that layout loads back to exactly the model of the lowbit layout, also when lowbit reads only the
// compressed-tensors description (config_groups, ignore) as a foreign checkpoint has it.
TEST(W8A8, CompressedTensorsRoundTrip) {
  LOWBIT_SHARED_OR_SKIP(model, "models/babyllama-105-hf");
  TempDir dir("w8a8_ct");
  int run = 0;
  for (const char* act : {"--act-static", "--act-granularity token --act-asym"}) {
    SCOPED_TRACE(act);
    ++run;
    const std::string common = std::string(" --algo rtn --bits 8 -g -1 --sym --act int8 ") + act +
                               " --skip-act '*.down_proj' --calib tinystories --nsamples 4 "
                               "--seqlen 64";
    const std::string lb = dir / fmt::format("lowbit{}", run), ct = dir / fmt::format("ct{}", run);
    ASSERT_EQ(
        test::run_cli("quantize --model " + model + " --out " + lb + common + " --format lowbit")
            .rc,
        0);
    const test::CliResult r = test::run_cli("quantize --model " + model + " --out " + ct + common +
                                            " --format compressed-tensors");
    ASSERT_EQ(r.rc, 0) << r.out;
    const std::vector<float> want = logits_of(load_model(lb), 24);
    // The same dequantized weights and scales (f16 values stored as F32): equal up to the kernels'
    // summation order.
    EXPECT_LT(test::max_rel_err(logits_of(load_model(ct), 24), want), 1e-5);
    // Written as llm-compressor does: quant_method, format, a config group per activation scheme.
    nlohmann::json cfg = nlohmann::json::parse(std::ifstream(ct + "/config.json"));
    nlohmann::json& qc = cfg["quantization_config"];
    EXPECT_EQ(qc["quant_method"], "compressed-tensors");
    EXPECT_EQ(qc["format"], "int-quantized");
    EXPECT_EQ(qc["config_groups"].size(), 2u);  // int8 inputs; down_proj weight-only
    // Without lowbit's own module list: the config groups alone give the same model.
    qc.erase("lowbit_modules");
    std::ofstream(ct + "/config.json") << cfg.dump(2);
    EXPECT_LT(test::max_rel_err(logits_of(load_model(ct), 24), want), 1e-5);
  }
  const test::CliResult bad =
      test::run_cli("quantize --model " + model + " --out " + (dir / "bad") +
                    " --algo rtn --bits 4 --format compressed-tensors --calib tinystories "
                    "--nsamples 2 --seqlen 32");
  EXPECT_EQ(bad.rc, 2);
  EXPECT_NE(bad.out.find("int8 per-channel symmetric"), std::string::npos) << bad.out;
  const test::CliResult asym =
      test::run_cli("quantize --model " + model + " --out " + (dir / "bad") +
                    " --algo rtn --bits 8 -g -1 --sym --act int8 --act-static --act-asym --format "
                    "compressed-tensors --calib tinystories --nsamples 2 --seqlen 32");
  EXPECT_EQ(asym.rc, 2);
  EXPECT_NE(asym.out.find("integer activation zero points"), std::string::npos) << asym.out;
}

}  // namespace
}  // namespace lowbit

namespace lowbit {
namespace {

// Static scales from a percentile or the MSE search clip the range the abs-max covers: smaller
// scales (never larger), recorded per module; bad combinations are errors.
TEST(W8A8, StaticScaleCalibrationMethods) {
  LOWBIT_SHARED_OR_SKIP(model, "models/stories260K-hf");
  TempDir dir("w8a8_calib");
  std::map<std::string, std::map<std::string, float>> scale;  // method → module → scale
  for (const char* method : {"absmax", "percentile", "mse"}) {
    QuantizeOptions o;
    o.algo = QuantAlgo::kRtn;
    o.recipe = Recipe{test::int_scheme(8, -1, true), {}};
    o.calib.text = "tinystories";
    o.calib.nsamples = 4;
    o.calib.seqlen = 64;
    ActScheme a;
    a.quantized = true;
    a.granularity = ActGranularity::kTensor;
    o.act = a;
    o.act_calib = method;
    o.act_percentile = 99.0;
    const QuantizeReport rep = quantize_model(model, dir / method, o);
    for (const LayerReport& l : rep.layers)
      if (l.act_scale > 0) scale[method][l.name] = l.act_scale;
  }
  ASSERT_FALSE(scale["absmax"].empty());
  int smaller = 0;
  for (const auto& [name, s] : scale["absmax"]) {
    EXPECT_LE(scale["percentile"][name], s) << name;
    EXPECT_LE(scale["mse"][name], s * (1 + 1e-6f)) << name;
    smaller += scale["percentile"][name] < s;
  }
  EXPECT_GT(smaller, 0);
  const test::CliResult r = test::run_cli("quantize --model " + model + " --out " + (dir / "bad") +
                                          " --algo rtn --bits 8 -g -1 --sym --act int8 "
                                          "--act-calib mse --calib tinystories --nsamples 2");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.out.find("use it with --act int8 --act-static"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace lowbit

namespace lowbit {
namespace {

// Per-layer α: rules override the fixed (or automatic) α for the groups they match; the report
// shows each group's α.
TEST(W8A8, PerLayerAlpha) {
  LOWBIT_SHARED_OR_SKIP(model, "models/stories260K-hf");
  TempDir dir("w8a8_alpha");
  QuantizeOptions o;
  o.algo = QuantAlgo::kRtn;
  o.recipe = Recipe{test::int_scheme(8, -1, true), {}};
  o.calib.text = "tinystories";
  o.calib.nsamples = 2;
  o.calib.seqlen = 64;
  ActScheme a;
  a.quantized = true;
  o.act = a;
  SmoothOptions so;
  so.alpha = -1.0f;  // auto elsewhere
  so.alpha_rules = {{"*.mlp.gate_proj", 0.8f}, {"model.layers.0.*", 0.25f}};
  o.smooth = so;
  const QuantizeReport rep = quantize_model(model, dir / "q", o);
  int checked = 0;
  for (const LayerReport& l : rep.layers) {
    if (l.name.rfind("model.layers.0.", 0) == 0 && l.smooth_alpha >= 0) {
      EXPECT_FLOAT_EQ(l.smooth_alpha, 0.25f) << l.name;
      ++checked;
    } else if (l.name.find(".mlp.gate_proj") != std::string::npos ||
               l.name.find(".mlp.up_proj") != std::string::npos) {
      EXPECT_FLOAT_EQ(l.smooth_alpha, 0.8f) << l.name;
      ++checked;
    } else if (l.smooth_alpha >= 0) {
      EXPECT_GE(l.smooth_alpha, so.alpha_min - 1e-6f) << l.name;  // the automatic grid
      EXPECT_LE(l.smooth_alpha, so.alpha_max + 1e-6f) << l.name;
    }
  }
  EXPECT_GT(checked, 4);
  const test::CliResult r = test::run_cli("quantize --model " + model + " --out " + (dir / "bad") +
                                          " --algo rtn --bits 8 -g -1 --sym --act int8 "
                                          "--smoothquant 0.5 --alpha-override 'x:1.5' "
                                          "--calib tinystories --nsamples 2");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.out.find("--alpha-override"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace lowbit

namespace lowbit {
namespace {

// --no-fold keeps SmoothQuant's scales as explicit input divisions (Linear::in_scale, stored per
// module): on a model with activation outliers it repairs per-token W8A8 as much as folding does,
// and the scales reach the loaded model; it cannot go into compressed-tensors.
TEST(W8A8, SmoothQuantWithoutFolding) {
  LOWBIT_SHARED_OR_SKIP(model, "models/babyllama-105-hf");
  LOWBIT_SHARED_OR_SKIP(text, "data/tinystories/tinystories-v1-valid-first500.txt");
  TempDir dir("w8a8_nofold");
  const std::string outl = dir / "outliers";
  ASSERT_EQ(test::run_cli("quantize --model " + model + " --out " + outl +
                          " --algo none --inject-outliers 4:50")
                .rc,
            0);
  const LoadedModel fp = load_model(model);
  const std::vector<int> toks =
      tokenize_for_convention(Convention::kGptq, *fp.tokenizer, load_text_set(text));
  const WindowPlan plan = plan_windows(Convention::kGptq, toks.size(), 256, /*limit=*/8);
  std::map<std::string, double> kld;
  for (const char* v : {"none", "fold", "nofold"}) {
    const std::string out = dir / v, name(v);
    std::string args =
        " --algo rtn --bits 8 -g -1 --sym --act int8 --calib tinystories "
        "--nsamples 8 --seqlen 128";
    if (name != "none") args += " --smoothquant 0.5";
    if (name == "nofold") args += " --no-fold";
    const test::CliResult r = test::run_cli("quantize --model " + outl + " --out " + out + args);
    ASSERT_EQ(r.rc, 0) << r.out;
    const LoadedModel q = load_model(out);
    const LayerWeights& L0 = q.weights->layers[0];
    EXPECT_EQ(L0.wq.in_scale != nullptr, name == "nofold");
    EXPECT_EQ(L0.w_down.in_scale != nullptr, name == "nofold");
    Transformer base(fp.weights, plan.ctx), tq(q.weights, plan.ctx);
    kld[name] = kl_divergence(base, tq, toks, plan, fp.tokenizer->bos_id()).kld_mean;
    std::cout << "[ nofold   ] " << name << ": mean KLD " << kld[name] << "\n";
  }
  EXPECT_LT(kld["fold"], 0.1 * kld["none"]);
  EXPECT_LT(kld["nofold"], 0.1 * kld["none"]);
  EXPECT_NEAR(kld["nofold"], kld["fold"], 0.2 * kld["fold"]);
  const test::CliResult ct =
      test::run_cli("quantize --model " + outl + " --out " + (dir / "ct") +
                    " --algo rtn --bits 8 -g -1 --sym --act int8 --smoothquant 0.5 --no-fold "
                    "--format compressed-tensors --calib tinystories --nsamples 2 --seqlen 64");
  EXPECT_EQ(ct.rc, 2);
  EXPECT_NE(ct.out.find("--no-fold cannot be written"), std::string::npos) << ct.out;
  const test::CliResult nf = test::run_cli("quantize --model " + outl + " --out " + (dir / "nf") +
                                           " --algo rtn --bits 8 --act int8 --no-fold");
  EXPECT_EQ(nf.rc, 2);
  EXPECT_NE(nf.out.find("--no-fold: needs --smoothquant"), std::string::npos) << nf.out;
}

}  // namespace
}  // namespace lowbit

namespace lowbit {
namespace {

// Per-layer activation schemes (--act-override): the loaded model runs each module's own scheme.
TEST(W8A8, PerLayerActivationSchemes) {
  LOWBIT_SHARED_OR_SKIP(model, "models/babyllama-105-hf");
  TempDir dir("w8a8_override");
  const std::string out = dir / "q";
  const test::CliResult r =
      test::run_cli("quantize --model " + model + " --out " + out +
                    " --algo rtn --bits 8 -g -1 --sym --act int8 --act-static --act-override "
                    "'*.mlp.down_proj:token-asym' --act-override '*.o_proj:fp' --act-override "
                    "'model.layers.1.*:block' --calib tinystories --nsamples 4 --seqlen 64");
  ASSERT_EQ(r.rc, 0) << r.out;
  const LoadedModel q = load_model(out);
  const LayerWeights& L0 = q.weights->layers[0];
  ASSERT_TRUE(L0.wq.packed->act && L0.wo.packed->act && L0.w_down.packed->act);
  EXPECT_EQ(L0.wq.packed->act->granularity, ActGranularity::kTensor);
  EXPECT_GT(L0.wq.packed->act->scale, 0.0f);
  EXPECT_FALSE(L0.wo.packed->act->quantized);
  EXPECT_EQ(L0.w_down.packed->act->granularity, ActGranularity::kToken);
  EXPECT_FALSE(L0.w_down.packed->act->sym);
  // A later rule wins over the earlier ones for layer 1.
  const LayerWeights& L1 = q.weights->layers[1];
  EXPECT_EQ(L1.wq.packed->act->granularity, ActGranularity::kBlock);
  EXPECT_EQ(L1.wo.packed->act->granularity, ActGranularity::kBlock);
  const test::CliResult bad =
      test::run_cli("quantize --model " + model + " --out " + (dir / "bad") +
                    " --algo rtn --bits 8 --act int8 --act-override 'x:row'");
  EXPECT_EQ(bad.rc, 2);
  EXPECT_NE(bad.out.find("--act-override"), std::string::npos) << bad.out;
}

}  // namespace
}  // namespace lowbit
