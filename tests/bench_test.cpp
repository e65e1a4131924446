// Benchmark arithmetic (hand-computed), the machine probes, and `lowbit bench` end to end.
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lowbit/bench/machine_probe.h"
#include "lowbit/bench/model_bench.h"
#include "lowbit/util/error.h"
#include "test_util.h"

namespace lowbit {
namespace {

// stories260K: dim 64, hidden 172, 5 layers, 8 heads, 4 kv heads, head_dim 8, vocab 512, tied.
ModelConfig stories260k() {
  ModelConfig c;
  c.dim = 64;
  c.hidden_dim = 172;
  c.n_layers = 5;
  c.n_heads = 8;
  c.n_kv_heads = 4;
  c.head_dim = 8;
  c.vocab_size = 512;
  c.max_seq_len = 512;
  c.tied_embeddings = true;
  return c;
}

TEST(BenchMath, ParamCountsTied) {
  const ParamCounts p = count_params(stories260k());
  EXPECT_EQ(p.embedding, 512 * 64);
  // per layer: q 64x64 + k 32x64 + v 32x64 + o 64x64 = 12288; mlp 3 * 172 * 64 = 33024.
  EXPECT_EQ(p.layer_linear, 5 * (12288 + 33024));  // 226560
  EXPECT_EQ(p.biases, 0);
  EXPECT_EQ(p.norms, 11 * 64);
  EXPECT_EQ(p.lm_head, 32768);
  // The llama2.c file holds 264135 floats: 7 header ints + 4096 freq_cis floats + 260032 weights.
  EXPECT_EQ(p.total, 260032);
}

TEST(BenchMath, ParamCountsUntiedWithBias) {
  ModelConfig c;
  c.dim = 8;
  c.hidden_dim = 16;
  c.n_layers = 2;
  c.n_heads = 2;
  c.n_kv_heads = 1;
  c.head_dim = 4;
  c.vocab_size = 10;
  c.tied_embeddings = false;
  c.qkv_bias = true;
  const ParamCounts p = count_params(c);
  EXPECT_EQ(p.layer_linear, 2 * (64 + 32 + 32 + 64 + 384));  // 1152
  EXPECT_EQ(p.biases, 2 * (8 + 4 + 4));
  EXPECT_EQ(p.norms, 5 * 8);
  EXPECT_EQ(p.total, 80 + 1152 + 32 + 40 + 80);
  // decode at pos 0: linear + biases + norms + lm_head + embedding row + KV (2*2*1*4 * 1).
  EXPECT_DOUBLE_EQ(decode_bytes(c, 0), 4.0 * (1152 + 32 + 40 + 80 + 8 + 16));
}

TEST(BenchMath, PrefillFlops) {
  const ModelConfig c = stories260k();
  // 2 * 226560 * 16 + attention 4 * 5 * 8 * 8 * (1 + ... + 16) + lm_head once 2 * 32768.
  EXPECT_DOUBLE_EQ(forward_flops(c, 16, 0), 7249920.0 + 1280.0 * 136 + 65536.0);
  EXPECT_DOUBLE_EQ(forward_flops(c, 16, 0), 7489536.0);
  // One decode token at position 16 attends to 17 positions.
  EXPECT_DOUBLE_EQ(forward_flops(c, 1, 16), 2.0 * 226560 + 1280.0 * 17 + 65536.0);
  EXPECT_EQ(forward_flops(c, 0, 0), 0.0);
}

TEST(BenchMath, DecodeBytes) {
  const ModelConfig c = stories260k();
  // 226560 linear + 704 norms + 32768 lm_head + 64 embedding row + KV 2*5*4*8 = 320 per position.
  EXPECT_DOUBLE_EQ(decode_bytes(c, 16), 4.0 * (260096 + 320 * 17));  // 1062144
  EXPECT_DOUBLE_EQ(decode_bytes(c, 16), 1062144.0);
  // Positions 16..19: mean window 18.5.
  EXPECT_DOUBLE_EQ(mean_decode_bytes(c, 16, 4), 4.0 * (260096 + 320 * 18.5));
  EXPECT_DOUBLE_EQ(
      mean_decode_bytes(c, 16, 4),
      (decode_bytes(c, 16) + decode_bytes(c, 17) + decode_bytes(c, 18) + decode_bytes(c, 19)) / 4);
}

TEST(BenchMath, Stat) {
  Stat s = make_stat({1, 2, 3, 4});
  EXPECT_DOUBLE_EQ(s.mean, 2.5);
  EXPECT_NEAR(s.std, std::sqrt(5.0 / 3.0), 1e-12);
  EXPECT_EQ(make_stat({7}).std, 0.0);
  EXPECT_EQ(make_stat({}).mean, 0.0);
}

TEST(BenchMath, Efficiency) {
  const ModelConfig c = stories260k();
  BenchOptions opt;
  opt.n_prompt = 16;
  opt.n_gen = 4;
  BenchResult r;
  r.pp = make_stat({1000, 1000});
  r.tg = make_stat({500});
  MachineProbe m;
  m.gemm.gflops = 100;
  m.bw.read_gbs = 10;
  const Efficiency e = compute_efficiency(c, opt, r, m);
  EXPECT_DOUBLE_EQ(e.prefill_flops_per_token, 7489536.0 / 16);
  EXPECT_NEAR(e.prefill_gflops, 7489536.0 / 16 * 1000 * 1e-9, 1e-12);
  EXPECT_NEAR(e.prefill_pct_of_gemm, 100.0 * e.prefill_gflops / 100, 1e-12);
  const double bpt = 4.0 * (260096 + 320 * 18.5);
  EXPECT_DOUBLE_EQ(e.decode_bytes_per_token, bpt);
  EXPECT_NEAR(e.decode_bound_tps, 10e9 / bpt, 1e-6);
  EXPECT_NEAR(e.decode_pct_of_bw_bound, 100.0 * 500 / (10e9 / bpt), 1e-9);
  EXPECT_NEAR(e.decode_gbs, bpt * 500 * 1e-9, 1e-12);
}

TEST(MachineProbe, ReadSumIsExact) {
  std::vector<float> v(1000 * 16 + 7, 1.0f);  // whole lines plus a tail
  EXPECT_EQ(parallel_read_sum(v.data(), v.size()), static_cast<float>(v.size()));
  EXPECT_EQ(parallel_read_sum(v.data(), 5), 5.0f);
}

TEST(MachineProbe, SmallProbesArePositiveAndFinite) {
  const BandwidthProbe bw = measure_bandwidth(size_t{8} << 20, 2, 1);
  EXPECT_EQ(bw.bytes, size_t{8} << 20);
  for (double x : {bw.read_gbs, bw.copy_gbs, bw.triad_gbs}) {
    EXPECT_TRUE(std::isfinite(x) && x > 0) << x;
  }
  const GemmProbe g = measure_sgemm(64, 96, 128, 2, 1);
  EXPECT_EQ(g.n, 96);
  EXPECT_TRUE(std::isfinite(g.gflops) && g.gflops > 0) << g.gflops;
  EXPECT_THROW(measure_sgemm(0, 1, 1, 1, 1), Error);
  EXPECT_THROW(measure_bandwidth(16, 1, 1), Error);
}

int run_cli(const std::string& args) { return test::run_cli(args).rc; }

TEST(BenchCli, JsonHasExpectedKeys) {
  LOWBIT_SHARED_OR_SKIP(model, "models/stories260K-hf");
  const auto json_path = std::filesystem::temp_directory_path() /
                         ("lowbit_bench_test_" + std::to_string(::getpid()) + ".json");
  ASSERT_EQ(run_cli("bench --model " + model + " -p 16 -n 4 -r 1 -t 1 --probe-mb 64 --json " +
                    json_path.string()),
            0);
  std::ifstream in(json_path);
  ASSERT_TRUE(in.good());
  const nlohmann::json j = nlohmann::json::parse(in);
  std::filesystem::remove(json_path);
  for (const char* key : {"pp16_tps", "tg4_tps", "bandwidth_gbs", "gemm_gflops",
                          "prefill_pct_of_gemm", "decode_pct_of_bw_bound", "params", "size_gb"}) {
    ASSERT_TRUE(j.contains(key)) << key;
  }
  for (const char* key : {"pp16_tps", "tg4_tps", "bandwidth_gbs", "gemm_gflops"}) {
    EXPECT_GT(j[key].get<double>(), 0) << key;
  }
  EXPECT_EQ(j["params"].get<int64_t>(), 260032);
  EXPECT_EQ(j["threads"].get<int>(), 1);
  EXPECT_EQ(j["pp16_tps_samples"].size(), 1u);
}

TEST(BenchCli, BadArgumentsExitTwo) {
  LOWBIT_SHARED_OR_SKIP(model, "models/stories260K-hf");
  EXPECT_EQ(run_cli("bench --model " + model + " -p 0 -n 0 --no-probe"), 2);
  EXPECT_EQ(run_cli("bench --model " + model + " -p 500 -n 100 -r 1 --no-probe"), 2);  // > 512
  EXPECT_EQ(run_cli("bench --model " + model + " -t 0 --no-probe"), 2);
  EXPECT_EQ(run_cli("bench --model /nonexistent/model -p 4 -n 1 --no-probe"), 2);
  // -n 0 skips decode: still succeeds.
  EXPECT_EQ(run_cli("bench --model " + model + " -p 8 -n 0 -r 1 -t 1 --no-probe"), 0);
}

}  // namespace
}  // namespace lowbit
