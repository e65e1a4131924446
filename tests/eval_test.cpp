// The evaluation library on token ids: window plans of both perplexity conventions, perplexity and
// KL divergence of a tiny random model against independent recomputations, LAMBADA splitting /
// encoding / scoring with a toy tokenizer, and the text sets.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "lowbit/eval/kld.h"
#include "lowbit/eval/lambada.h"
#include "lowbit/eval/logprobs.h"
#include "lowbit/eval/perplexity.h"
#include "lowbit/eval/report.h"
#include "lowbit/eval/text_sets.h"
#include "lowbit/eval/window_runner.h"
#include "lowbit/eval/windows.h"
#include "lowbit/model/transformer.h"
#include "lowbit/tokenizer/tokenizer.h"
#include "lowbit/util/error.h"
#include "test_util.h"
#include "tiny_model.h"

namespace lowbit {
namespace {

constexpr int kBos = 1;

// A toy tokenizer: id 1 = BOS, 2 = EOS, greedy longest match over `pieces` (ids 3..), else one
// character per token (id 3 + pieces.size() + (byte % 16)). It merges "d " into one piece, to
// exercise the SentencePiece-style boundary rule of LAMBADA continuations.
class ToyTokenizer : public Tokenizer {
 public:
  explicit ToyTokenizer(bool with_bos = true) : with_bos_(with_bos) {}
  std::vector<int> encode(const std::string& text, bool add_special) const override {
    std::vector<int> out;
    if (add_special && with_bos_) out.push_back(kBos);
    for (size_t i = 0; i < text.size();) {
      if (text.compare(i, 2, "d ") == 0) {
        out.push_back(3);
        i += 2;
      } else {
        out.push_back(4 + static_cast<unsigned char>(text[i]) % 16);
        ++i;
      }
    }
    return out;
  }
  std::string decode(const std::vector<int>&, bool) const override { return ""; }
  std::string decode_token(int, int) const override { return ""; }
  int vocab_size() const override { return 20; }
  int bos_id() const override { return with_bos_ ? kBos : -1; }
  int eos_id() const override { return 2; }

 private:
  bool with_bos_;
};

std::vector<int> random_tokens(int n, int vocab, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> d(3, vocab - 1);
  std::vector<int> t(n);
  for (int& x : t) x = d(rng);
  t[0] = kBos;
  return t;
}

// --- window arithmetic ---------------------------------------------------------------------

TEST(EvalWindows, GptqScoresEveryTokenAfterTheFirst) {
  WindowPlan p = plan_windows(Convention::kGptq, 1050, 100);
  EXPECT_EQ(p.n_windows_available, 10);  // ragged tail of 50 dropped
  EXPECT_EQ(p.n_windows, 10);
  EXPECT_EQ(p.first_scored, 0);
  EXPECT_EQ(p.n_scored, 99);
  EXPECT_EQ(p.tokens_scored(), 990);
  EXPECT_FALSE(p.bos_first);
}

TEST(EvalWindows, LlamaCppScoresTheSecondHalf) {
  WindowPlan p = plan_windows(Convention::kLlamaCpp, 1000, 100);
  EXPECT_EQ(p.n_windows, 10);
  EXPECT_EQ(p.first_scored, 50);
  EXPECT_EQ(p.n_scored, 49);  // rows 50..98 predict tokens 51..99
  EXPECT_EQ(p.tokens_scored(), 490);
  EXPECT_TRUE(p.bos_first);
  WindowPlan odd = plan_windows(Convention::kLlamaCpp, 1000, 101);
  EXPECT_EQ(odd.n_windows, 9);
  EXPECT_EQ(odd.first_scored, 50);
  EXPECT_EQ(odd.n_scored, 50);
  WindowPlan llama512 = plan_windows(Convention::kLlamaCpp, 512, 512);
  EXPECT_EQ(llama512.n_scored, 255);
}

TEST(EvalWindows, LimitAndErrors) {
  EXPECT_EQ(plan_windows(Convention::kGptq, 1000, 100, 3).n_windows, 3);
  EXPECT_EQ(plan_windows(Convention::kGptq, 1000, 100, 30).n_windows, 10);
  EXPECT_EQ(plan_windows(Convention::kGptq, 100, 100).n_windows, 1);
  EXPECT_THROW(plan_windows(Convention::kGptq, 99, 100), Error);
  EXPECT_THROW(plan_windows(Convention::kGptq, 10, 1), Error);
  EXPECT_THROW(plan_windows(Convention::kLlamaCpp, 10, 2), Error);
  EXPECT_EQ(plan_windows(Convention::kLlamaCpp, 10, 3).n_scored, 1);
  EXPECT_EQ(parse_convention("llamacpp"), Convention::kLlamaCpp);
  EXPECT_EQ(parse_convention("gptq"), Convention::kGptq);
  EXPECT_THROW(parse_convention("wikitext"), Error);
}

TEST(EvalWindows, WindowTokensReplaceFirstByBosOnlyForLlamaCpp) {
  std::vector<int> toks{1, 5, 6, 7, 8, 9, 10, 11, 12};
  WindowPlan g = plan_windows(Convention::kGptq, toks.size(), 4);
  EXPECT_EQ(window_tokens(g, toks, 1, kBos), (std::vector<int>{8, 9, 10, 11}));
  WindowPlan l = plan_windows(Convention::kLlamaCpp, toks.size(), 4);
  EXPECT_EQ(window_tokens(l, toks, 0, kBos), (std::vector<int>{1, 5, 6, 7}));
  EXPECT_EQ(window_tokens(l, toks, 1, kBos), (std::vector<int>{1, 9, 10, 11}));
  EXPECT_THROW(window_tokens(l, toks, 2, kBos), Error);
}

TEST(EvalWindows, TokenizationPerConvention) {
  ToyTokenizer tok;
  EXPECT_EQ(tokenize_for_convention(Convention::kGptq, tok, "ab"), (std::vector<int>{1, 5, 6}));
  EXPECT_EQ(tokenize_for_convention(Convention::kLlamaCpp, tok, "ab"), (std::vector<int>{1, 5, 6}));
  ToyTokenizer no_bos(false);
  EXPECT_EQ(tokenize_for_convention(Convention::kLlamaCpp, no_bos, "ab"), (std::vector<int>{5, 6}));
  EXPECT_EQ(convention_bos(Convention::kLlamaCpp, tok), kBos);
  EXPECT_EQ(convention_bos(Convention::kLlamaCpp, no_bos), -1);
}

// A tokenizer with a BOS id that its encode() never adds (GPT-2 style): llama-perplexity neither
// prepends it nor puts it at the start of each window.
TEST(EvalWindows, LlamaCppConventionPutsBosOnlyWhenTheTokenizerAddsIt) {
  struct NoAdd : ToyTokenizer {
    NoAdd() : ToyTokenizer(false) {}
    int bos_id() const override { return kBos; }
  } tok;
  EXPECT_EQ(convention_bos(Convention::kLlamaCpp, tok), -1);
  EXPECT_EQ(tokenize_for_convention(Convention::kLlamaCpp, tok, "ab"), (std::vector<int>{5, 6}));
  EXPECT_EQ(convention_bos(Convention::kGptq, tok), kBos);
}

// --- log-probabilities ---------------------------------------------------------------------

TEST(EvalLogprobs, StableLogSumExpAndKl) {
  std::vector<float> row{1000.0f, 1000.0f};
  EXPECT_NEAR(log_sum_exp(row.data(), 2), 1000.0 + std::log(2.0), 1e-9);
  std::vector<float> a{0.0f, std::log(3.0f)}, b{0.0f, 0.0f};  // P = (1/4, 3/4), Q = (1/2, 1/2)
  std::vector<double> lp, lq;
  log_softmax(a.data(), 2, &lp);
  log_softmax(b.data(), 2, &lq);
  const double expect = 0.25 * std::log(0.5) + 0.75 * std::log(1.5);
  EXPECT_NEAR(kl_divergence_rows(lp, lq), expect, 1e-7);
  EXPECT_EQ(kl_divergence_rows(lp, lp), 0.0);
  EXPECT_EQ(argmax(a.data(), 2), 1);
  std::vector<double> v{5, 1, 4, 2, 3};
  EXPECT_DOUBLE_EQ(percentile(&v, 50), 3.0);
  EXPECT_DOUBLE_EQ(percentile(&v, 100), 5.0);
  EXPECT_DOUBLE_EQ(percentile(&v, 90), 4.6);
}

// --- perplexity against a token-by-token recomputation --------------------------------------

// NLL of every scored prediction, recomputed one token at a time with a fresh cache per window.
double reference_mean_nll(const std::shared_ptr<ModelWeights>& w, const std::vector<int>& toks,
                          Convention conv, int ctx, int64_t* count) {
  const int vocab = w->cfg.vocab_size;
  const int64_t windows = static_cast<int64_t>(toks.size()) / ctx;
  const int first = conv == Convention::kGptq ? 0 : ctx / 2;
  double sum = 0;
  *count = 0;
  for (int64_t win = 0; win < windows; ++win) {
    Transformer t(w, ctx);
    for (int i = 0; i < ctx - 1; ++i) {
      int tok = toks[win * ctx + i];
      if (i == 0 && conv == Convention::kLlamaCpp) tok = kBos;
      const float* logits = t.forward(&tok, 1, false);
      if (i < first) continue;
      double mx = logits[0], s = 0;
      for (int j = 1; j < vocab; ++j) mx = std::max<double>(mx, logits[j]);
      for (int j = 0; j < vocab; ++j) s += std::exp(logits[j] - mx);
      sum += mx + std::log(s) - logits[toks[win * ctx + i + 1]];
      ++*count;
    }
  }
  return sum / static_cast<double>(*count);
}

TEST(EvalPerplexity, MatchesTokenByTokenRecomputation) {
  auto w = test::make_tiny_model();
  const std::vector<int> toks = random_tokens(170, w->cfg.vocab_size, 7);
  for (Convention conv : {Convention::kGptq, Convention::kLlamaCpp}) {
    const int ctx = 16;
    WindowPlan plan = plan_windows(conv, toks.size(), ctx);
    Transformer model(w, ctx);
    PplResult r = perplexity(model, toks, plan, kBos);
    int64_t count = 0;
    const double ref = reference_mean_nll(w, toks, conv, ctx, &count);
    EXPECT_EQ(plan.tokens_scored(), count) << convention_name(conv);
    EXPECT_NEAR(r.nll_mean, ref, 1e-4) << convention_name(conv);
    EXPECT_NEAR(r.ppl, std::exp(ref), 1e-4 * std::exp(ref)) << convention_name(conv);
    EXPECT_GT(r.nll_stderr, 0.0);
    // A random model over 40 tokens is far from certain, and no better than ~uniform.
    EXPECT_GT(r.ppl, 2.0);
  }
}

TEST(EvalPerplexity, LimitEvaluatesOnlyTheFirstWindows) {
  auto w = test::make_tiny_model();
  const std::vector<int> toks = random_tokens(160, w->cfg.vocab_size, 3);
  Transformer model(w, 32);
  PplResult all = perplexity(model, toks, plan_windows(Convention::kGptq, toks.size(), 32), kBos);
  PplResult one =
      perplexity(model, toks, plan_windows(Convention::kGptq, toks.size(), 32, 1), kBos);
  std::vector<int> head(toks.begin(), toks.begin() + 32);
  PplResult only = perplexity(model, head, plan_windows(Convention::kGptq, 32, 32), kBos);
  EXPECT_EQ(all.plan.n_windows, 5);
  EXPECT_EQ(one.plan.n_windows, 1);
  EXPECT_DOUBLE_EQ(one.nll_mean, only.nll_mean);
  EXPECT_NE(one.nll_mean, all.nll_mean);
}

// Windows run on per-thread replicas give the same per-window results as one after another, every
// window runs exactly once, done() sees each, and an error in one window reaches the caller.
TEST(EvalWindowRunner, ParallelWindowsMatchSequential) {
  auto w = test::make_tiny_model();
  const std::vector<int> toks = random_tokens(16 * 9, w->cfg.vocab_size, 11);
  const WindowPlan plan = plan_windows(Convention::kGptq, toks.size(), 16);
  Transformer model(w, 16);
  auto run = [&](int threads, std::vector<const Transformer*>* used) {
    std::vector<double> sums(static_cast<size_t>(plan.n_windows), -1.0);
    std::vector<int> done_count(static_cast<size_t>(plan.n_windows), 0);
    std::vector<const Transformer*> who(static_cast<size_t>(plan.n_windows), nullptr);
    for_each_window(
        {&model}, plan.n_windows,
        [&](const std::vector<Transformer*>& m, int64_t win) {
          const std::vector<int> t = window_tokens(plan, toks, win, kBos);
          m[0]->reset();
          const float* lg = m[0]->forward(t.data(), plan.ctx, true);
          double s = 0;
          for (int i = 0; i < plan.ctx * w->cfg.vocab_size; ++i) s += lg[i] * (1 + i % 7);
          sums[static_cast<size_t>(win)] = s;
          who[static_cast<size_t>(win)] = m[0];
          std::this_thread::sleep_for(std::chrono::milliseconds(3));  // let every thread take one
        },
        [&](int64_t win) { ++done_count[static_cast<size_t>(win)]; }, threads);
    for (int c : done_count) EXPECT_EQ(c, 1);
    *used = who;
    return sums;
  };
  std::vector<const Transformer*> seq_used, par_used;
  const std::vector<double> seq = run(1, &seq_used), par = run(3, &par_used);
  EXPECT_EQ(seq, par);
  for (const Transformer* t : seq_used) EXPECT_EQ(t, &model);
  EXPECT_GT(std::count_if(par_used.begin(), par_used.end(), [&](auto* t) { return t != &model; }),
            0);
  EXPECT_THROW(for_each_window(
                   {&model}, plan.n_windows,
                   [&](const std::vector<Transformer*>&, int64_t win) {
                     if (win == 4) fail("window", "boom");
                   },
                   [](int64_t) {}, 3),
               Error);
}

TEST(EvalPerplexity, RejectsTooLongCtxAndForeignTokens) {
  auto w = test::make_tiny_model();
  try {
    check_ctx(w->cfg, 65, "m");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "m: ctx 65 exceeds the model's maximum context 64");
  }
  EXPECT_NO_THROW(check_ctx(w->cfg, 64, "m"));
  EXPECT_EQ(default_ctx(w->cfg), 64);
  std::vector<int> toks = random_tokens(64, w->cfg.vocab_size, 1);
  toks[10] = 40;  // vocab is 40
  Transformer model(w, 32);
  EXPECT_THROW(perplexity(model, toks, plan_windows(Convention::kGptq, 64, 32), kBos), Error);
}

// --- KL divergence --------------------------------------------------------------------------

// A copy of `w` whose lm_head rows are perturbed by Gaussian noise of the given scale.
std::shared_ptr<ModelWeights> perturbed(const std::shared_ptr<ModelWeights>& w, float scale) {
  auto p = std::make_shared<ModelWeights>(*w);
  auto buf = std::make_shared<std::vector<float>>(
      w->lm_head.w, w->lm_head.w + static_cast<size_t>(w->lm_head.out) * w->lm_head.in);
  std::mt19937 rng(99);
  std::normal_distribution<float> d(0.0f, scale);
  for (float& x : *buf) x += d(rng);
  p->lm_head.w = buf->data();
  p->keep_alive.push_back(buf);
  return p;
}

TEST(EvalKld, ModelAgainstItselfIsZero) {
  auto w = test::make_tiny_model();
  const std::vector<int> toks = random_tokens(100, w->cfg.vocab_size, 5);
  Transformer a(w, 20), b(w, 20);
  KldResult r = kl_divergence(a, b, toks, plan_windows(Convention::kGptq, toks.size(), 20), kBos);
  EXPECT_EQ(r.plan.tokens_scored(), 5 * 19);
  EXPECT_EQ(r.kld_mean, 0.0);
  EXPECT_EQ(r.kld_max, 0.0);
  EXPECT_DOUBLE_EQ(r.top1_agreement, 100.0);
  EXPECT_DOUBLE_EQ(r.ppl_ratio, 1.0);
  Transformer solo(w, 20);
  PplResult p = perplexity(solo, toks, r.plan, kBos);
  EXPECT_NEAR(r.base_ppl, p.ppl, 1e-9 * p.ppl);
}

TEST(EvalKld, PerturbedCopyDivergesAndMatchesTokenByTokenComputation) {
  auto w = test::make_tiny_model();
  auto q = perturbed(w, 0.3f);
  const std::vector<int> toks = random_tokens(60, w->cfg.vocab_size, 11);
  const int ctx = 20, vocab = w->cfg.vocab_size;
  for (Convention conv : {Convention::kGptq, Convention::kLlamaCpp}) {
    WindowPlan plan = plan_windows(conv, toks.size(), ctx);
    Transformer a(w, ctx), b(q, ctx);
    KldResult r = kl_divergence(a, b, toks, plan, kBos);
    EXPECT_GT(r.kld_mean, 1e-4);
    EXPECT_GE(r.kld_p99, r.kld_median);
    EXPECT_GE(r.kld_max, r.kld_p99);
    EXPECT_LT(r.top1_agreement, 100.0);
    EXPECT_GT(r.top1_agreement, 0.0);
    EXPECT_NE(r.ppl_ratio, 1.0);
    // Recompute the mean KLD one token at a time, with textbook softmaxes.
    double sum = 0;
    int64_t n = 0;
    for (int64_t win = 0; win < plan.n_windows; ++win) {
      const std::vector<int> t = window_tokens(plan, toks, win, kBos);
      Transformer ra(w, ctx), rb(q, ctx);
      for (int i = 0; i < ctx - 1; ++i) {
        const float* la = ra.forward(&t[i], 1);
        const float* lb = rb.forward(&t[i], 1);
        if (i < plan.first_scored) continue;
        double za = 0, zb = 0;
        for (int j = 0; j < vocab; ++j) {
          za += std::exp(static_cast<double>(la[j]));
          zb += std::exp(static_cast<double>(lb[j]));
        }
        double kl = 0;
        for (int j = 0; j < vocab; ++j) {
          const double pa = std::exp(static_cast<double>(la[j])) / za;
          const double pb = std::exp(static_cast<double>(lb[j])) / zb;
          kl += pa * std::log(pa / pb);
        }
        sum += kl;
        ++n;
      }
    }
    EXPECT_EQ(n, plan.tokens_scored());
    EXPECT_NEAR(r.kld_mean, sum / static_cast<double>(n), 1e-4 * sum / static_cast<double>(n))
        << convention_name(conv);
  }
}

TEST(EvalKld, RejectsDifferentVocabularies) {
  auto w = test::make_tiny_model();
  test::TinyModelOptions o;
  o.vocab = 41;
  auto other = test::make_tiny_model(o);
  const std::vector<int> toks = random_tokens(40, 40, 1);
  Transformer a(w, 20), b(other, 20);
  EXPECT_THROW(kl_divergence(a, b, toks, plan_windows(Convention::kGptq, 40, 20), kBos), Error);
}

// --- LAMBADA --------------------------------------------------------------------------------

TEST(EvalLambada, SplitsOffTheLastWordLikeRsplit) {
  auto d = split_lambada("He looked at the old dog");
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->context, "He looked at the old");
  EXPECT_EQ(d->target, " dog");
  auto quoted = split_lambada("\"Go,\" she said.\n\n\"Where?\" asked Tom");
  ASSERT_TRUE(quoted.has_value());
  EXPECT_EQ(quoted->context, "\"Go,\" she said.\n\n\"Where?\" asked");
  EXPECT_EQ(quoted->target, " Tom");
  auto dbl = split_lambada("a b  c");  // rsplit(" ", 1) -> ["a b ", "c"]
  ASSERT_TRUE(dbl.has_value());
  EXPECT_EQ(dbl->context, "a b ");
  EXPECT_EQ(dbl->target, " c");
  EXPECT_FALSE(split_lambada("nospace").has_value());
  EXPECT_FALSE(split_lambada("").has_value());
}

TEST(EvalLambada, ContinuationIsWholeMinusContextPrefix) {
  ToyTokenizer tok;
  // Char-level pieces: continuation = the tokens of " cat".
  LambadaRequest r = encode_lambada(tok, {"the", " cat"});
  EXPECT_EQ(r.context, tok.encode("the", true));
  EXPECT_EQ(r.context.front(), kBos);
  std::vector<int> cat = tok.encode(" cat", false);
  EXPECT_EQ(r.continuation, cat);
  // "d " merges across the boundary: whole = [BOS, o, l, "d ", c, a, t], ctx = [BOS, o, l, d];
  // lm-eval takes whole[4:] = [c, a, t] (the space disappears into the merged piece).
  LambadaRequest m = encode_lambada(tok, {"old", " cat"});
  EXPECT_EQ(m.context, tok.encode("old", true));
  EXPECT_EQ(m.continuation, tok.encode("cat", false));
  // Trailing whitespace of the context moves into the continuation.
  LambadaRequest sp = encode_lambada(tok, {"a b ", " c"});
  EXPECT_EQ(sp.context, tok.encode("a b", true));
  EXPECT_EQ(sp.continuation, tok.encode("  c", false));
  // Without special tokens (older lm-eval): no BOS.
  EXPECT_EQ(encode_lambada(tok, {"the", " cat"}, false).context, tok.encode("the", false));
  // An empty context becomes [BOS].
  LambadaRequest e = encode_lambada(tok, {"", " cat"});
  EXPECT_EQ(e.context, std::vector<int>{kBos});
}

TEST(EvalLambada, ScoresContinuationAgainstDirectForward) {
  auto w = test::make_tiny_model();
  const int vocab = w->cfg.vocab_size;
  Transformer model(w, 64);
  // Greedy continuation of [1, 5, 7] for two tokens.
  std::vector<int> seq{1, 5, 7};
  Transformer ref(w, 64);
  const float* l0 = ref.forward(seq.data(), 3, false);
  const int g1 = argmax(l0, vocab);
  const double lp1 = l0[g1] - log_sum_exp(l0, vocab);
  const float* l1 = ref.forward(&g1, 1, false);
  const int g2 = argmax(l1, vocab);
  const int other = (g2 + 1) % vocab;
  const double lp2 = l1[g2] - log_sum_exp(l1, vocab);
  const double lp_other = l1[other] - log_sum_exp(l1, vocab);

  LambadaScore good = score_lambada(model, {{1, 5, 7}, {g1, g2}});
  EXPECT_TRUE(good.correct);
  EXPECT_EQ(good.predicted, (std::vector<int>{g1, g2}));
  EXPECT_NEAR(good.logprob, lp1 + lp2, 1e-4);
  LambadaScore bad = score_lambada(model, {{1, 5, 7}, {g1, other}});
  EXPECT_FALSE(bad.correct);
  EXPECT_NEAR(bad.logprob, lp1 + lp_other, 1e-4);
}

TEST(EvalLambada, LeftTruncatesToTheModelContext) {
  auto w = test::make_tiny_model();
  Transformer small(w, 8), big(w, 64);
  std::vector<int> ctx = random_tokens(20, w->cfg.vocab_size, 4);
  std::vector<int> tail(ctx.end() - 7, ctx.end());  // 7 context + 1 continuation input = 8
  LambadaScore a = score_lambada(small, {ctx, {9, 10}});
  LambadaScore b = score_lambada(big, {tail, {9, 10}});
  EXPECT_NEAR(a.logprob, b.logprob, 1e-5);
  EXPECT_EQ(a.predicted, b.predicted);
}

TEST(EvalLambada, LoadsJsonlAndAggregates) {
  const std::string path = ::testing::TempDir() + "lambada_test_fixture.jsonl";
  {
    std::ofstream out(path);
    out << R"({"text": "the old cat"})"
        << "\n\n"
        << R"({"text": "nospace"})"
        << "\n"
        << R"({"text": "a b c"})"
        << "\n";
  }
  LambadaSet set = load_lambada(path);
  ASSERT_EQ(set.docs.size(), 2u);
  EXPECT_EQ(set.n_skipped, 1);
  EXPECT_EQ(set.docs[1].target, " c");
  auto w = test::make_tiny_model();
  Transformer model(w, 64);
  ToyTokenizer tok;
  LambadaOptions opt;
  opt.n_examples = 1;
  LambadaResult r = evaluate_lambada(model, tok, set, opt);
  EXPECT_EQ(r.n_docs, 2);
  ASSERT_EQ(r.examples.size(), 1u);
  double lp = 0;
  for (const LambadaDoc& d : set.docs) lp += score_lambada(model, encode_lambada(tok, d)).logprob;
  EXPECT_NEAR(r.mean_logprob, lp / 2, 1e-9);
  EXPECT_NEAR(r.ppl, std::exp(-lp / 2), 1e-9 * r.ppl);
  opt.limit = 1;
  EXPECT_EQ(evaluate_lambada(model, tok, set, opt).n_docs, 1);

  {
    std::ofstream out(path);
    out << R"({"text": "ok line"})"
        << "\n"
        << "{not json\n";
  }
  try {
    load_lambada(path);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), path + ":2: not valid JSON (truncated or corrupt?)");
  }
  { std::ofstream out(path, std::ios::trunc); }
  EXPECT_THROW(load_lambada(path), Error);
  std::remove(path.c_str());
}

TEST(EvalLambada, ParsesTextLikeTheFile) {
  const LambadaSet set = parse_lambada("mem.jsonl", "{\"text\": \"a b c\"}\r\n\n{\"text\": \"x\"}");
  ASSERT_EQ(set.docs.size(), 1u);
  EXPECT_EQ(set.docs[0].context, "a b");
  EXPECT_EQ(set.docs[0].target, " c");
  EXPECT_EQ(set.n_skipped, 1);
  EXPECT_EQ(test::error_of([] { parse_lambada("mem.jsonl", "\n \n"); }),
            "mem.jsonl: empty text file");
  // Found by fuzz/json_read_fuzz (regress_nul_ends_json): a NUL byte ended the line's JSON for
  // nlohmann, so a line with junk after one was read as the part before it.
  const std::string text("{\"text\": \"a b\"}\0junk\n", 21);
  EXPECT_EQ(test::error_of([&] { parse_lambada("mem.jsonl", text); }),
            "mem.jsonl:1: not valid JSON (a NUL byte at offset 15)");
}

// --- text sets and output -------------------------------------------------------------------

TEST(EvalTextSets, WikitextJoinRule) {
  // Rows keep their "\n"; a blank row " \n" becomes ""; rows are joined with "\n\n".
  EXPECT_EQ(wikitext_hf_join(" \n = A = \n \n x\n"), "\n\n = A = \n\n\n\n\n x\n");
  EXPECT_EQ(wikitext_hf_join("a\nb"), "a\n\n\nb");
  EXPECT_EQ(wikitext_hf_join(""), "");
}

TEST(EvalTextSets, ErrorsAndFiles) {
  const std::string path = ::testing::TempDir() + "eval_text_fixture.txt";
  { std::ofstream out(path, std::ios::trunc); }
  try {
    load_text_set(path);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), path + ": empty text file");
  }
  {
    std::ofstream out(path);
    out << "hello world";
  }
  EXPECT_EQ(load_text_set(path), "hello world");
  std::remove(path.c_str());
  EXPECT_THROW(load_text_set("no-such-set-or-file"), Error);
  EXPECT_THROW(load_text_set("lambada"), Error);
  EXPECT_TRUE(is_text_set_name("wikitext2"));
  EXPECT_FALSE(is_text_set_name("wikitext3"));
}

TEST(EvalTextSets, Wikitext2HasThePublishedByteCount) {
  LOWBIT_SHARED_OR_SKIP(raw, "data/wikitext-2/wiki.test.raw");
  setenv("LOWBIT_SHARED", test::shared_dir().c_str(), 1);
  EXPECT_EQ(shared_dir(), test::shared_dir());
  const std::string text = load_text_set("wikitext2");
  EXPECT_EQ(text.size(), 1296370u);
  EXPECT_EQ(text.substr(0, 22), "\n\n = Robert Boulter = ");
  EXPECT_EQ(resolve_text_path("tinystories"),
            test::shared_dir() + "/data/tinystories/tinystories-v1-valid-first500.txt");
  unsetenv("LOWBIT_SHARED");
}

TEST(EvalReport, JsonFileIsWrittenWholeWithTheKeys) {
  WindowPlan plan = plan_windows(Convention::kLlamaCpp, 100, 10);
  PplResult r;
  r.plan = plan;
  r.ppl = 3.5;
  const std::string path = ::testing::TempDir() + "eval_report.json";
  write_json_file(path, to_json(r));
  std::ifstream in(path);
  nlohmann::json j = nlohmann::json::parse(in);
  EXPECT_EQ(j["ppl"], 3.5);
  EXPECT_EQ(j["convention"], "llamacpp");
  EXPECT_EQ(j["tokens_scored"], 40);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  std::remove(path.c_str());
  KldResult k;
  k.plan = plan;
  EXPECT_TRUE(to_json(k).contains("kld_mean"));
  EXPECT_TRUE(to_json(LambadaResult{}).contains("accuracy"));
}

}  // namespace
}  // namespace lowbit
