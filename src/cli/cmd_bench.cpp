// `lowbit bench`: llama-bench-style prefill / decode throughput of the FP32 forward pass, with the
// machine's measured memory bandwidth and GEMM rate as yardsticks (see docs/BENCH.md).
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "cli/commands.h"
#include "cli/output.h"
#include "cli/runtime_args.h"
#include "cli/validators.h"
#include "lowbit/bench/kernel_bench.h"
#include "lowbit/bench/machine_probe.h"
#include "lowbit/bench/model_bench.h"
#include "lowbit/eval/report.h"
#include "lowbit/io/output_dir.h"
#include "lowbit/model/load.h"
#include "lowbit/util/error.h"
#include "lowbit/util/memory.h"

namespace lowbit::cli {
namespace {

struct BenchArgs {
  std::string model;
  int n_prompt = 512;
  int n_gen = 128;
  int threads = 0;  // 0: all hardware threads
  int reps = 5;
  std::string json_path;
  int probe_mb = 1024;
  bool no_probe = false;
  bool kernels = false;
  RuntimeArgs rt;
  uint32_t seed = 1234;
};

std::string model_name(const std::string& path) {
  std::filesystem::path p(path);
  while (!p.empty() && p.filename().empty()) p = p.parent_path();  // trailing '/'
  std::string name = p.filename().string();
  return name.empty() ? path : name;
}

std::string human_count(double n) {
  if (n >= 1e9) return fmt::format("{:.2f} B", n / 1e9);
  if (n >= 1e6) return fmt::format("{:.2f} M", n / 1e6);
  return fmt::format("{:.2f} K", n / 1e3);
}

void print_table(const BenchArgs& a, const ParamCounts& pc, const BenchResult& res, double bytes) {
  const std::string name = model_name(a.model);
  const std::string params = human_count(static_cast<double>(pc.total));
  const double gb = bytes / 1e9;
  const std::string size =
      gb >= 0.1 ? fmt::format("{:.2f} GB", gb) : fmt::format("{:.2f} MB", gb * 1e3);
  outf("| model | params | size | threads | test | t/s |\n");
  outf("| --- | ---: | ---: | ---: | --- | ---: |\n");
  auto row = [&](const std::string& test, const Stat& s) {
    outf("| {} | {} | {} | {} | {} | {:.2f} ± {:.2f} |\n", name, params, size, a.threads, test,
         s.mean, s.std);
  };
  if (a.n_prompt > 0) row(fmt::format("pp{}", a.n_prompt), res.pp);
  if (a.n_gen > 0) row(fmt::format("tg{}", a.n_gen), res.tg);
}

void print_efficiency(const BenchArgs& a, const MachineProbe& m, const Efficiency& e) {
  outf("\nmachine: {} ({} threads)\n", m.cpu.empty() ? "unknown CPU" : m.cpu, a.threads);
  outf("memory bandwidth ({} MiB buffer): read {:.1f} GB/s, copy {:.1f} GB/s, triad {:.1f} GB/s\n",
       m.bw.bytes >> 20, m.bw.read_gbs, m.bw.copy_gbs, m.bw.triad_gbs);
  outf("fp32 GEMM (OpenBLAS sgemm {}x{}x{}): {:.1f} GFLOP/s", m.gemm.m, m.gemm.n, m.gemm.k,
       m.gemm.gflops);
  if (m.gemm_square.gflops > 0) {
    outf(", square {}^3: {:.1f} GFLOP/s", m.gemm_square.m, m.gemm_square.gflops);
  }
  outf("\n");
  if (a.n_prompt > 0) {
    outf(
        "prefill: {:.3f} GFLOP/token -> {:.1f} GFLOP/s = {:.1f} % of the GEMM rate "
        "(target >= 50 %)\n",
        e.prefill_flops_per_token * 1e-9, e.prefill_gflops, e.prefill_pct_of_gemm);
  }
  if (a.n_gen > 0) {
    outf(
        "decode: {:.4f} GB/token -> {:.1f} GB/s; bound {:.2f} t/s; {:.1f} % of the "
        "bandwidth bound (target >= 70 %)\n",
        e.decode_bytes_per_token * 1e-9, e.decode_gbs, e.decode_bound_tps,
        e.decode_pct_of_bw_bound);
  }
}

nlohmann::json to_json(const BenchArgs& a, const ModelConfig& cfg, const ParamCounts& pc,
                       const BenchResult& res, const MachineProbe* m, const Efficiency& e,
                       double bytes, const std::string& weights) {
  nlohmann::json j;
  j["model"] = a.model;
  j["params"] = pc.total;
  j["params_linear"] = pc.layer_linear;
  j["size_gb"] = bytes / 1e9;
  j["weights"] = weights;
  j["act"] = a.rt.act;
  j["fp_weights"] = a.rt.fp_weights;
  j["dequantize"] = a.rt.dequantize;
  j["kv_cache"] = a.rt.kv;
  j["threads"] = a.threads;
  j["reps"] = a.reps;
  j["n_prompt"] = a.n_prompt;
  j["n_gen"] = a.n_gen;
  j["dim"] = cfg.dim;
  j["n_layers"] = cfg.n_layers;
  if (a.n_prompt > 0) {
    const std::string k = fmt::format("pp{}", a.n_prompt);
    j[k + "_tps"] = res.pp.mean;
    j[k + "_tps_std"] = res.pp.std;
    j[k + "_tps_samples"] = res.pp.samples;
    j["prefill_flops_per_token"] = e.prefill_flops_per_token;
    j["prefill_gflops"] = e.prefill_gflops;
  }
  if (a.n_gen > 0) {
    const std::string k = fmt::format("tg{}", a.n_gen);
    j[k + "_tps"] = res.tg.mean;
    j[k + "_tps_std"] = res.tg.std;
    j[k + "_tps_samples"] = res.tg.samples;
    j["decode_bytes_per_token"] = e.decode_bytes_per_token;
    j["decode_gbs"] = e.decode_gbs;
  }
  if (m != nullptr) {
    j["cpu"] = m->cpu;
    j["bandwidth_gbs"] = m->bw.read_gbs;
    j["copy_gbs"] = m->bw.copy_gbs;
    j["triad_gbs"] = m->bw.triad_gbs;
    j["bandwidth_buffer_bytes"] = m->bw.bytes;
    j["gemm_gflops"] = m->gemm.gflops;
    j["gemm_shape"] = {m->gemm.m, m->gemm.n, m->gemm.k};
    if (m->gemm_square.gflops > 0) j["gemm_square_gflops"] = m->gemm_square.gflops;
    if (a.n_prompt > 0) j["prefill_pct_of_gemm"] = e.prefill_pct_of_gemm;
    if (a.n_gen > 0) {
      j["decode_bound_tps"] = e.decode_bound_tps;
      j["decode_pct_of_bw_bound"] = e.decode_pct_of_bw_bound;
    }
  }
  return j;
}

int run_kernel_bench_cmd(const BenchArgs& a) {
  LoadedModel lm = load_model(a.model, "", /*load_tokenizer=*/false, apply_runtime_args(a.rt));
  KernelBenchOptions ko;
  ko.m_prefill = a.n_prompt;
  ko.threads = a.threads;
  const std::vector<KernelBenchRow> rows = run_kernel_bench(*lm.weights, ko);
  outf("| role | shape | format | act | rows | µs/call | GB/s | GOP/s |\n");
  outf("| --- | --- | --- | --- | ---: | ---: | ---: | ---: |\n");
  nlohmann::json j = nlohmann::json::array();
  for (const KernelBenchRow& r : rows) {
    outf("| {} | {}x{} | {} | {} | {} | {:.1f} | {:.1f} | {:.1f} |\n", r.role, r.out, r.in,
         r.format, r.act, r.m, r.seconds * 1e6, r.gbs, r.gops);
    j.push_back({{"role", r.role},
                 {"out", r.out},
                 {"in", r.in},
                 {"format", r.format},
                 {"act", r.act},
                 {"m", r.m},
                 {"seconds", r.seconds},
                 {"gbs", r.gbs},
                 {"gops", r.gops},
                 {"weight_bytes", r.weight_bytes},
                 {"layers", r.layers}});
  }
  out_flush();
  if (!a.json_path.empty()) {
    write_json_file(a.json_path, {{"model", a.model}, {"threads", a.threads}, {"kernels", j}});
  }
  return 0;
}

int run_bench(BenchArgs a) {
  if (a.threads <= 0)
    a.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (a.probe_mb < 1) fail("--probe-mb", "must be >= 1, got {}", a.probe_mb);
  if (!a.json_path.empty()) {
    check_output_path(a.json_path, model_input_paths(a.model), /*folder=*/false);
  }
  if (!a.no_probe) {
    require_memory("--probe-mb", "the bandwidth probe (three buffers of --probe-mb)",
                   uint64_t{3} * static_cast<uint64_t>(a.probe_mb) << 20);
  }
  if (a.kernels) return run_kernel_bench_cmd(a);
  BenchOptions opt;
  opt.n_prompt = a.n_prompt;
  opt.n_gen = a.n_gen;
  opt.reps = a.reps;
  opt.threads = a.threads;
  opt.seed = a.seed;
  opt.tf = transformer_options(a.rt, a.model);

  MachineProbe probe;
  if (!a.no_probe) {
    ProbeOptions po;
    po.bw_bytes = static_cast<size_t>(a.probe_mb) << 20;
    po.threads = a.threads;
    probe = probe_machine(po);
  }
  LoadedModel lm = load_model(a.model, "", /*load_tokenizer=*/false, apply_runtime_args(a.rt));
  const ModelConfig& cfg = lm.weights->cfg;
  const BenchResult res = run_model_bench(lm.weights, opt);
  const ParamCounts pc = count_params(cfg);
  const Efficiency e = compute_efficiency(cfg, opt, res, probe, lm.weights.get());

  const double bytes = model_bytes(*lm.weights);
  const std::string weights = weights_summary(*lm.weights);
  outf("weights: {}\n", weights);
  print_table(a, pc, res, bytes);
  if (!a.no_probe) print_efficiency(a, probe, e);
  out_flush();
  if (!a.json_path.empty()) {
    write_json_file(a.json_path,
                    to_json(a, cfg, pc, res, a.no_probe ? nullptr : &probe, e, bytes, weights));
  }
  return 0;
}

}  // namespace

void add_bench(CLI::App& app, Runner* run) {
  auto* sub = app.add_subcommand(
      "bench", "Prefill/decode tokens/s (llama-bench style) against measured bandwidth and GEMM");
  auto args = std::make_shared<BenchArgs>();
  sub->add_option("-m,--model", args->model, "HF folder, llama2.c checkpoint or GGUF file")
      ->required();
  sub->add_option("-p,--n-prompt", args->n_prompt, "prompt tokens prefilled in one call (0: skip)")
      ->capture_default_str()
      ->check(int_in(0, 1 << 20));
  sub->add_option("-n,--n-gen", args->n_gen, "tokens decoded one at a time after it (0: skip)")
      ->capture_default_str()
      ->check(int_in(0, 1 << 20));
  sub->add_option("-t,--threads", args->threads, "threads (OpenMP and OpenBLAS; default: all)")
      ->check(int_in(1, 1024));
  sub->add_option("-r,--reps", args->reps, "repetitions after the warm-up run")
      ->capture_default_str()
      ->check(int_in(1, 100000));
  sub->add_option("--json", args->json_path, "also write the results as JSON to this file");
  sub->add_option("--probe-mb", args->probe_mb, "bandwidth probe buffer size in MiB")
      ->capture_default_str()
      ->check(int_in(1, 1 << 20));
  sub->add_flag("--no-probe", args->no_probe, "skip the bandwidth / GEMM probes");
  sub->add_flag("--kernels", args->kernels,
                "per linear-layer shape: kernel GB/s and GOP/s for 1 row and -p rows");
  add_runtime_options(sub, &args->rt);
  sub->add_option("--seed", args->seed, "seed of the random token ids")
      ->capture_default_str()
      ->check(int_in(0, UINT32_MAX));
  sub->callback([run, args] { *run = [args] { return run_bench(*args); }; });
}

}  // namespace lowbit::cli
