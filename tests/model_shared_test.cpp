// The FP32 forward pass on the two real shared models: both layouts agree, and greedy generation
// reproduces the published samples token for token.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "lowbit/model/load.h"
#include "lowbit/model/sampler.h"
#include "lowbit/model/transformer.h"
#include "test_util.h"

namespace lowbit {
namespace {

// Logits of every position of `toks` (all rows).
std::vector<float> all_logits(const LoadedModel& m, const std::vector<int>& toks) {
  Transformer tf(m.weights, static_cast<int>(toks.size()));
  const float* p = tf.forward(toks.data(), static_cast<int>(toks.size()), true);
  return std::vector<float>(p, p + toks.size() * m.weights->cfg.vocab_size);
}

void expect_layouts_agree(const std::string& l2c, const std::string& hf) {
  LoadedModel a = load_model(l2c);
  LoadedModel b = load_model(hf);
  ASSERT_EQ(a.weights->cfg.vocab_size, b.weights->cfg.vocab_size);
  // A real sentence, as both tokenizers see it (they must agree too).
  const std::string text = "Once upon a time, there was a little dog named Max. He liked to run.";
  const std::vector<int> toks = a.tokenizer->encode(text, true);
  ASSERT_EQ(toks, b.tokenizer->encode(text, true));
  const auto la = all_logits(a, toks), lb = all_logits(b, toks);
  double max_diff = 0;
  for (size_t i = 0; i < la.size(); ++i)
    max_diff = std::max(max_diff, double(std::abs(la[i] - lb[i])));
  EXPECT_LE(max_diff, 1e-4) << l2c << " vs " << hf;
  // Prefill of all tokens at once equals decode one at a time (last position).
  Transformer tf(b.weights, static_cast<int>(toks.size()));
  const float* last = nullptr;
  for (int t : toks) last = tf.forward(&t, 1);
  const size_t V = static_cast<size_t>(b.weights->cfg.vocab_size);
  for (size_t v = 0; v < V; ++v) EXPECT_NEAR(last[v], lb[(toks.size() - 1) * V + v], 1e-4);
}

TEST(SharedModels, Stories260KLayoutsGiveSameLogits) {
  LOWBIT_SHARED_OR_SKIP(l2c, "models/stories260K/stories260K.bin");
  LOWBIT_SHARED_OR_SKIP(hf, "models/stories260K-hf");
  expect_layouts_agree(l2c, hf);
}

TEST(SharedModels, BabyLlamaLayoutsGiveSameLogits) {
  LOWBIT_SHARED_OR_SKIP(l2c, "models/babyllama-105/model5000.bin");
  LOWBIT_SHARED_OR_SKIP(hf, "models/babyllama-105-hf");
  expect_layouts_agree(l2c, hf);
}

// Greedy continuation of `prompt` (with BOS) for n tokens, as ids.
std::vector<int> greedy(const LoadedModel& m, const std::string& prompt, int n) {
  std::vector<int> ids = m.tokenizer->encode(prompt, true);
  const size_t prompt_len = ids.size();
  Transformer tf(m.weights, static_cast<int>(prompt_len) + n);
  const float* logits = tf.forward(ids.data(), static_cast<int>(ids.size()));
  for (int i = 0; i < n; ++i) {
    const int next = argmax(logits, m.weights->cfg.vocab_size);
    ids.push_back(next);
    if (i + 1 < n) logits = tf.forward(&next, 1);
  }
  return std::vector<int>(ids.begin() + static_cast<std::ptrdiff_t>(prompt_len), ids.end());
}

TEST(SharedModels, Stories260KGreedyReproducesPublishedSample) {
  const std::string published =
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
      "park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.";
  for (const char* layout : {"models/stories260K", "models/stories260K-hf"}) {
    LOWBIT_SHARED_OR_SKIP(path, layout);
    LoadedModel m = load_model(path);
    // The published text as tokens (without BOS), then the same number of greedy tokens.
    std::vector<int> expected = m.tokenizer->encode(published, false);
    const std::vector<int> got = greedy(m, "", static_cast<int>(expected.size()));
    EXPECT_EQ(got, expected) << layout << ": " << m.tokenizer->decode(got);
  }
}

TEST(SharedModels, BabyLlamaGreedyReproducesPublishedContinuation) {
  // ../shared/README.md gives the greedy text of prompt + continuation.
  const std::string published =
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
      "sunshine. One day, she went to the park with her mommy and daddy.";
  const std::string prompt = "Once upon a time";
  for (const char* layout : {"models/babyllama-105", "models/babyllama-105-hf"}) {
    LOWBIT_SHARED_OR_SKIP(path, layout);
    LoadedModel m = load_model(path);
    std::vector<int> ids = m.tokenizer->encode(prompt, true);
    const int n = static_cast<int>(m.tokenizer->encode(published, true).size() - ids.size());
    ASSERT_GT(n, 0);
    const std::vector<int> got = greedy(m, prompt, n);
    ids.insert(ids.end(), got.begin(), got.end());
    std::string text = m.tokenizer->decode(ids);
    text.erase(0, text.find_first_not_of(' '));
    EXPECT_EQ(text, published) << layout;
  }
}

}  // namespace
}  // namespace lowbit
