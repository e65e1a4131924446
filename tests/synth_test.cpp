// Synthetic checkpoints: loadable, deterministic, heavy-tailed with outlier channels.
#include "lowbit/synth/synth.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "lowbit/io/safetensors.h"
#include "lowbit/model/load.h"
#include "lowbit/model/transformer.h"
#include "lowbit/util/error.h"
#include "test_util.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;

using test::TempDir;

SynthOptions small_opts(const std::string& out, DType dt, int layers = 2) {
  SynthOptions o;
  o.shape = "small";
  o.dtype = dt;
  o.out_dir = out;
  o.seed = 7;
  o.layers = layers;
  return o;
}

double kurtosis(const float* x, size_t n) {
  double m = 0, m2 = 0, m4 = 0;
  for (size_t i = 0; i < n; ++i) m += x[i];
  m /= static_cast<double>(n);
  for (size_t i = 0; i < n; ++i) {
    const double d = x[i] - m;
    m2 += d * d;
    m4 += d * d * d * d;
  }
  m2 /= static_cast<double>(n);
  m4 /= static_cast<double>(n);
  return m4 / (m2 * m2);
}

TEST(Synth, HeavyTailQuantileIsStudentT4) {
  // Student-t(4) scaled to unit variance: median 0, symmetric, P(T <= 2.132) = 0.95 before
  // scaling by 1/sqrt(2).
  EXPECT_NEAR(synth_heavy_tail(0.5), 0.0f, 1e-6f);
  EXPECT_NEAR(synth_heavy_tail(0.95), 2.1318f / std::sqrt(2.0f), 1e-3f);
  EXPECT_NEAR(synth_heavy_tail(0.05), -2.1318f / std::sqrt(2.0f), 1e-3f);
  EXPECT_NEAR(synth_heavy_tail(0.995), 4.6041f / std::sqrt(2.0f), 2e-3f);
  EXPECT_EQ(synth_heavy_tail(1e-300), -16.0f);
}

TEST(Synth, SmallShapeLoadsWithRealisticStatistics) {
  TempDir dir("small");
  const std::string out = dir.sub("model");
  SynthResult r = synth_checkpoint(small_opts(out, DType::BF16));
  EXPECT_EQ(r.cfg.n_layers, 2);
  EXPECT_TRUE(fs::exists(out + "/config.json"));
  EXPECT_TRUE(fs::exists(out + "/model.safetensors"));
  // Only the final folder remains next to it.
  int entries = 0;
  for (const auto& e : fs::directory_iterator(dir.path)) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1);

  auto w = load_hf_weights(out);
  EXPECT_EQ(w->cfg.dim, 256);
  EXPECT_EQ(w->cfg.hidden_dim, 688);
  EXPECT_EQ(w->cfg.n_kv_heads, 4);
  EXPECT_EQ(w->cfg.vocab_size, 512);
  EXPECT_FALSE(w->cfg.tied_embeddings);
  EXPECT_EQ(r.params, int64_t{512} * 256 * 2 + 256 +
                          2 * (2 * 256 + 256 * 256 * 2 + 128 * 256 * 2 + 688 * 256 * 3));

  const Linear& q = w->layers[1].wq;
  const size_t n = static_cast<size_t>(q.out) * q.in;
  EXPECT_GT(kurtosis(q.w, n), 4.0) << "entries must be heavy-tailed";
  // Outlier input channels: a few columns much larger than the typical one.
  std::vector<double> col(static_cast<size_t>(q.in), 0.0);
  for (int o = 0; o < q.out; ++o) {
    for (int i = 0; i < q.in; ++i) col[i] += double{q.w[o * q.in + i]} * q.w[o * q.in + i];
  }
  std::vector<double> sorted = col;
  std::sort(sorted.begin(), sorted.end());
  const double median = sorted[sorted.size() / 2];
  const auto outliers =
      std::count_if(col.begin(), col.end(), [&](double c) { return c > 16.0 * median; });
  EXPECT_GE(outliers, 2);
  EXPECT_LE(outliers, 8);
  // Bulk std ~ 1/sqrt(in).
  EXPECT_NEAR(std::sqrt(median / q.out), 1.0 / std::sqrt(256.0), 0.3 / std::sqrt(256.0));
  // q, k, v share their outlier channels (same input activations).
  const Linear& k = w->layers[1].wk;
  const size_t top = static_cast<size_t>(std::max_element(col.begin(), col.end()) - col.begin());
  double k_top = 0, k_other = 0;
  for (int o = 0; o < k.out; ++o) {
    k_top += std::fabs(k.w[o * k.in + top]);
    k_other += std::fabs(k.w[o * k.in + (top + 1) % k.in]);
  }
  EXPECT_GT(k_top, 3.0 * k_other);
  // Norm weights near 1, positive, with some spread.
  double mean = 0, var = 0;
  for (int i = 0; i < 256; ++i) mean += w->layers[0].attn_norm.w[i];
  mean /= 256;
  for (int i = 0; i < 256; ++i) {
    EXPECT_GT(w->layers[0].attn_norm.w[i], 0.0f);
    var += (w->layers[0].attn_norm.w[i] - mean) * (w->layers[0].attn_norm.w[i] - mean);
  }
  EXPECT_NEAR(mean, 1.0, 0.05);
  EXPECT_GT(std::sqrt(var / 256), 0.03);
}

TEST(Synth, DeterministicAndDtypesAgree) {
  TempDir dir("det");
  synth_checkpoint(small_opts(dir.sub("a"), DType::F32, 1));
  synth_checkpoint(small_opts(dir.sub("b"), DType::F32, 1));
  SynthOptions other = small_opts(dir.sub("c"), DType::F32, 1);
  other.seed = 8;
  synth_checkpoint(other);
  synth_checkpoint(small_opts(dir.sub("d"), DType::BF16, 1));
  auto a = load_hf_weights(dir.sub("a"));
  auto b = load_hf_weights(dir.sub("b"));
  auto c = load_hf_weights(dir.sub("c"));
  auto d = load_hf_weights(dir.sub("d"));
  const size_t n = 688 * 256;
  EXPECT_EQ(std::memcmp(a->layers[0].w_up.w, b->layers[0].w_up.w, n * 4), 0);
  EXPECT_NE(std::memcmp(a->layers[0].w_up.w, c->layers[0].w_up.w, n * 4), 0);
  for (size_t i = 0; i < n; i += 97) {
    const float x = a->layers[0].w_up.w[i];
    EXPECT_NEAR(d->layers[0].w_up.w[i], x, std::fabs(x) * (1.0f / 128) + 1e-30f);
  }
}

TEST(Synth, ShardsAndErrors) {
  TempDir dir("shards");
  SynthOptions o = small_opts(dir.sub("m"), DType::F32, 2);
  o.max_shard_bytes = 1 << 20;
  SynthResult r = synth_checkpoint(o);
  EXPECT_TRUE(fs::exists(dir.sub("m/model.safetensors.index.json")));
  EXPECT_GT(r.files.size(), 3u);
  auto w = load_hf_weights(dir.sub("m"));
  EXPECT_EQ(w->cfg.n_layers, 2);
  // Existing output without force.
  EXPECT_THROW(synth_checkpoint(o), Error);
  o.force = true;
  o.max_shard_bytes = size_t{1} << 30;
  synth_checkpoint(o);
  EXPECT_FALSE(fs::exists(dir.sub("m/model.safetensors.index.json")));
  EXPECT_TRUE(fs::exists(dir.sub("m/model.safetensors")));
  // Unknown shape, bad dtype, failing tokenizer copy leaves nothing behind.
  o.shape = "gpt-5";
  EXPECT_THROW(synth_checkpoint(o), Error);
  o = small_opts(dir.sub("n"), DType::I32, 1);
  EXPECT_THROW(synth_checkpoint(o), Error);
  o = small_opts(dir.sub("n"), DType::BF16, 1);
  o.tokenizer = dir.sub("no-such-tokenizer.json");
  EXPECT_THROW(synth_checkpoint(o), Error);
  EXPECT_FALSE(fs::exists(dir.sub("n")));
  for (const auto& e : fs::directory_iterator(dir.path)) {
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
  }
}

TEST(Synth, RealShapesHaveTheirPublishedHyperParameters) {
  ModelConfig t = synth_shape("tinyllama-1.1b");
  EXPECT_EQ(t.dim, 2048);
  EXPECT_EQ(t.hidden_dim, 5632);
  EXPECT_EQ(t.n_layers, 22);
  EXPECT_EQ(t.n_kv_heads, 4);
  EXPECT_FALSE(t.tied_embeddings);
  ModelConfig l = synth_shape("llama-2-7b");
  EXPECT_EQ(l.hidden_dim, 11008);
  EXPECT_EQ(l.n_kv_heads, 32);
  ModelConfig q = synth_shape("qwen2-0.5b");
  EXPECT_TRUE(q.qkv_bias);
  EXPECT_EQ(q.head_dim, 64);
  EXPECT_EQ(synth_shape("llama-3.2-1b").rope_scaling.type, "llama3");
  EXPECT_EQ(synth_shape("mistral-7b").architecture, "MistralForCausalLM");
  EXPECT_THROW(synth_shape("nope"), Error);
}

// The other families' shapes come from their published config.json, read by the family's entry.
TEST(Synth, OtherFamiliesHaveTheirPublishedHyperParameters) {
  const ModelConfig j = synth_shape("gpt-j-6b");
  EXPECT_EQ(j.family, "gptj");
  EXPECT_EQ(j.dim, 4096);
  EXPECT_EQ(j.n_heads, 16);
  EXPECT_EQ(j.n_layers, 28);
  EXPECT_EQ(j.hidden_dim, 16384);
  EXPECT_EQ(j.rope_dims, 64);
  EXPECT_TRUE(j.rope_interleaved);
  EXPECT_TRUE(j.parallel_block && j.shared_norm);
  EXPECT_TRUE(j.lm_head_bias);
  const ModelConfig o = synth_shape("opt-6.7b");
  EXPECT_EQ(o.hidden_dim, 16384);
  EXPECT_EQ(o.position, PositionKind::kLearned);
  EXPECT_EQ(o.position_offset, 2);
  EXPECT_EQ(o.act, ops::Activation::kRelu);
  EXPECT_TRUE(o.tied_embeddings);
  const ModelConfig f = synth_shape("falcon-7b");
  EXPECT_EQ(f.dim, 4544);
  EXPECT_EQ(f.n_heads, 71);
  EXPECT_EQ(f.n_kv_heads, 1);
  EXPECT_EQ(f.head_dim, 64);
  EXPECT_EQ(f.hidden_dim, 4 * 4544);
  EXPECT_EQ(f.vocab_size, 65024);
  const ModelConfig b = synth_shape("bloom-7b1");
  EXPECT_EQ(b.position, PositionKind::kAlibi);
  EXPECT_TRUE(b.embed_norm);
  EXPECT_EQ(b.vocab_size, 250880);
  EXPECT_EQ(b.n_layers, 30);
  const ModelConfig n = synth_shape("gpt-neox-20b");
  EXPECT_EQ(n.head_dim, 96);
  EXPECT_EQ(n.rope_dims, 24);  // rotary_pct 0.25
  EXPECT_EQ(n.n_layers, 44);
  EXPECT_TRUE(n.parallel_block);
  EXPECT_FALSE(n.shared_norm);
}

// A published-config shape is written with its own config.json (the layer count and dtype
// replaced) and runs.
TEST(Synth, PublishedConfigShapeWritesItsConfigAndRuns) {
  TempDir dir("opt");
  SynthOptions o;
  o.shape = "opt-6.7b";
  o.layers = 1;
  o.dtype = DType::F16;
  o.out_dir = dir.sub("m");
  const SynthResult r = synth_checkpoint(o);
  EXPECT_EQ(r.cfg.n_layers, 1);
  const std::string cfg = test::read_all(o.out_dir + "/config.json");
  EXPECT_NE(cfg.find("\"word_embed_proj_dim\": 4096"), std::string::npos) << cfg;
  EXPECT_NE(cfg.find("\"num_hidden_layers\": 1"), std::string::npos) << cfg;
  EXPECT_NE(cfg.find("\"torch_dtype\": \"float16\""), std::string::npos) << cfg;
  auto w = load_hf_weights(o.out_dir);
  EXPECT_EQ(w->cfg.architecture, "OPTForCausalLM");
  Transformer tf(w, 4);
  const std::vector<int> toks = {2, 100, 2000, 30000};
  const float* logits = tf.forward(toks.data(), 4);
  for (int i = 0; i < w->cfg.vocab_size; ++i) ASSERT_TRUE(std::isfinite(logits[i])) << i;
}

TEST(Synth, CliWritesAFolder) {
  TempDir dir("cli");
  const std::string out = dir.sub("m");
  const std::string cmd = lowbit::test::cli_path() +
                          " synth --shape small --layers 1 --dtype f16 --out " + out +
                          " --seed 3 > " + dir.sub("log") + " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  auto w = load_hf_weights(out);
  EXPECT_EQ(w->cfg.n_layers, 1);
  const std::string bad =
      lowbit::test::cli_path() + " synth --shape nope --out " + dir.sub("x") + " 2>/dev/null";
  const int rc = std::system(bad.c_str());
  EXPECT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 2);
}

}  // namespace
}  // namespace lowbit
