// Quantization of every architecture's shared tiny model (../shared/models/TINY-ARCHS.md): RTN,
// GPTQ, GPTQ with act-order and AWQ at W4 g32 (GPTQ layout, as `lowbit quantize` writes by
// default). For each family: every run succeeds; GPTQ (both orders) and AWQ have a lower mean KLD
// against the FP model than RTN on TinyStories evaluation windows (Bloom calibrated on more
// tokens, see below); each quantized folder reloads onto the quantized kernels with the
// perplexity of the dequantized reference path (RuntimeOptions::repack off).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "lowbit/eval/kld.h"
#include "lowbit/eval/perplexity.h"
#include "lowbit/eval/text_sets.h"
#include "lowbit/eval/windows.h"
#include "lowbit/formats/scheme.h"
#include "lowbit/kernels/packed_matmul.h"
#include "lowbit/model/load.h"
#include "lowbit/model/transformer.h"
#include "lowbit/quant/quantize_model.h"
#include "test_util.h"

namespace lowbit {
namespace {

using test::TempDir;

struct Family {
  const char* folder;
  // GPTQ's KLD is below this fraction of RTN's (measured 0.24-0.52 with 30 % headroom). On
  // bloom-tiny GPTQ was at 0.44 (32 x 256 tokens) and 0.40 (128 x 512) when the calibration skipped
  // the embedding LayerNorm (and GPT-2 / OPT their learned positions); now 0.24: the bound guards
  // the calibration input.
  double gptq_max_fraction = 1.0;
  // Calibration windows. 32 x 256 tokens keeps the suite fast; bloom-tiny gets the CLI's default
  // 128 x 512: with 32 x 256 its AWQ loses to RTN (KLD 0.00082 vs 0.00071; AWQ's clip search
  // lowers each linear's and each layer's output error on the calibration text by 10-45 % and
  // still raises the end-to-end KLD; without the clip 0.00060), with 128 x 512 it wins (0.00066 vs
  // 0.00071 on these 24 windows).
  int nsamples = 32, seqlen = 256;
};

// Decoder linears held packed for the kernels (and not as fp32).
int packed_linears(const ModelWeights& w) {
  int n = 0;
  for (const LayerWeights& L : w.layers) {
    for (const Linear* l : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) {
      n += l->packed != nullptr && l->w == nullptr;
    }
  }
  return n;
}

struct ActModeGuard {
  kernels::ActMode saved = kernels::act_mode();
  ~ActModeGuard() { kernels::set_act_mode(saved); }
};

class ArchQuantize : public ::testing::TestWithParam<Family> {};

TEST_P(ArchQuantize, RtnGptqAwqRunAndCalibratedOnesBeatRtn) {
  const Family& f = GetParam();
  LOWBIT_SHARED_OR_SKIP(model, std::string("models/") + f.folder);
  LOWBIT_SHARED_OR_SKIP(text, "data/tinystories/tinystories-v1-valid-first500.txt");
  TempDir dir("arch_quant");
  const LoadedModel fp = load_model(model);
  const std::vector<int> toks =
      tokenize_for_convention(Convention::kGptq, *fp.tokenizer, load_text_set(text));
  const WindowPlan plan = plan_windows(Convention::kGptq, toks.size(), 256, /*limit=*/24);
  const int bos = fp.tokenizer->bos_id();

  struct Run {
    const char* name;
    QuantAlgo algo;
    bool act_order;
  };
  std::map<std::string, double> kld;
  for (const Run& r :
       {Run{"rtn", QuantAlgo::kRtn, false}, Run{"gptq", QuantAlgo::kGptq, false},
        Run{"gptq_act_order", QuantAlgo::kGptq, true}, Run{"awq", QuantAlgo::kAwq, false}}) {
    SCOPED_TRACE(r.name);
    QuantizeOptions o;
    o.algo = r.algo;
    o.recipe = Recipe{test::int_scheme(4, 32), {}};
    o.gptq.act_order = r.act_order;
    o.calibrate = r.algo != QuantAlgo::kRtn;
    o.calib.text = "tinystories";
    o.calib.nsamples = f.nsamples;
    o.calib.seqlen = f.seqlen;
    const std::string out = dir / r.name;
    const QuantizeReport rep = quantize_model(model, out, o);
    ASSERT_FALSE(rep.layers.empty());
    int decoder_linears = 0, fp_linears = 0;
    for (const LayerReport& l : rep.layers) {
      if (l.layout == "fp") {
        ++fp_linears;  // an untied lm_head stays FP by default
        continue;
      }
      EXPECT_EQ(l.layout, "gptq") << l.name;  // every linear of these shapes fits the GPTQ layout
      ++decoder_linears;
    }
    EXPECT_LE(fp_linears, 1);

    // On the kernels (the default) and on the dequantized reference path (--dequantize): every
    // decoder linear runs packed, and with fp32 activations the perplexity is the reference's;
    // with the default activations (int8 where the kernels choose it) it is within 1 %.
    const LoadedModel on_kernels = load_model(out, "", true, RuntimeOptions{});
    RuntimeOptions deq;
    deq.repack = false;
    const LoadedModel dequantized = load_model(out, "", true, deq);
    EXPECT_EQ(packed_linears(*on_kernels.weights), decoder_linears);
    EXPECT_EQ(packed_linears(*dequantized.weights), 0);
    Transformer tk(on_kernels.weights, plan.ctx), td(dequantized.weights, plan.ctx);
    const PplResult pd = perplexity(td, toks, plan, bos);
    const PplResult pk = perplexity(tk, toks, plan, bos);
    EXPECT_NEAR(pk.ppl, pd.ppl, 1e-2 * pd.ppl) << "kernels (default activations) vs --dequantize";
    {
      ActModeGuard guard;
      kernels::set_act_mode(kernels::ActMode::kF32);
      const PplResult pf = perplexity(tk, toks, plan, bos);
      EXPECT_NEAR(pf.ppl, pd.ppl, 1e-4 * pd.ppl) << "kernels (fp32 activations) vs --dequantize";
    }

    Transformer base(fp.weights, plan.ctx);
    const KldResult k = kl_divergence(base, tk, toks, plan, bos);
    EXPECT_GT(k.kld_mean, 0.0);
    kld[r.name] = k.kld_mean;
    std::cout << "[ quality  ] " << f.folder << " " << r.name << ": mean KLD " << k.kld_mean
              << ", top-1 " << k.top1_agreement << " %, PPL " << pk.ppl << "\n";
  }
  EXPECT_LT(kld["gptq"], f.gptq_max_fraction * kld["rtn"]);
  EXPECT_LT(kld["gptq_act_order"], kld["rtn"]);
  EXPECT_LT(kld["awq"], kld["rtn"]);
}

// SmoothQuant's scales folded into the preceding norms and linears leave every family's function
// unchanged (--algo none writes the smoothed FP model): logits of the smoothed and the original
// model agree to fp32 rounding, while the smoothed inputs' ranges really shrank.
TEST_P(ArchQuantize, SmoothingKeepsTheFunction) {
  const Family& f = GetParam();
  LOWBIT_SHARED_OR_SKIP(model, std::string("models/") + f.folder);
  TempDir dir("arch_smooth");
  QuantizeOptions o;
  o.algo = QuantAlgo::kNone;
  o.recipe = Recipe{test::int_scheme(8, -1), {}};
  ActScheme act;
  act.quantized = true;
  o.act = act;
  SmoothOptions so;
  so.alpha = 0.8f;
  o.smooth = so;
  o.calib.text = "tinystories";
  o.calib.nsamples = 4;
  o.calib.seqlen = 64;
  const std::string out = dir / "smoothed";
  const QuantizeReport rep = quantize_model(model, out, o);
  int smoothed = 0;
  for (const LayerReport& l : rep.layers) {
    if (l.smooth_alpha >= 0) {
      ++smoothed;
      EXPECT_GT(l.act_absmax, 0.0f) << l.name;
      EXPECT_GT(l.act_absmax_smoothed, 0.0f) << l.name;
    }
  }
  EXPECT_GE(smoothed, 2 * 2) << "every layer has at least its norm-fed groups smoothed";
  const LoadedModel a = load_model(model), b = load_model(out);
  std::vector<int> toks(64);
  for (size_t i = 0; i < toks.size(); ++i) toks[i] = static_cast<int>((i * 37 + 11) % 500);
  Transformer ta(a.weights, 64), tb(b.weights, 64);
  const int vocab = a.weights->cfg.vocab_size;
  const float* la = ta.forward(toks.data(), 64, true);
  std::vector<float> ref(la, la + static_cast<size_t>(64) * vocab);
  const float* lb = tb.forward(toks.data(), 64, true);
  double max_abs = 0, max_diff = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    max_abs = std::max(max_abs, std::fabs(double(ref[i])));
    max_diff = std::max(max_diff, std::fabs(double(ref[i]) - lb[i]));
  }
  std::cout << "[ smooth   ] " << f.folder << ": " << smoothed << " smoothed linears, max |dlogit| "
            << max_diff << " of max |logit| " << max_abs << "\n";
  EXPECT_LT(max_diff, 1e-4 * max_abs);
}

INSTANTIATE_TEST_SUITE_P(TinyModels, ArchQuantize,
                         ::testing::Values(Family{"gpt2-tiny"}, Family{"opt-tiny"},
                                           Family{"bloom-tiny", 0.32, 128, 512},
                                           Family{"falcon-tiny"}, Family{"gptneox-tiny"},
                                           Family{"gptj-tiny"}, Family{"phi-tiny"},
                                           Family{"llama-256"}),
                         [](const ::testing::TestParamInfo<Family>& i) {
                           std::string n = i.param.folder;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

}  // namespace
}  // namespace lowbit
