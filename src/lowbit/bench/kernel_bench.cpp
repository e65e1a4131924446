#include "lowbit/bench/kernel_bench.h"

#include <algorithm>
#include <chrono>
#include <random>

#include "lowbit/kernels/packed_matmul.h"
#include "lowbit/kernels/packed_weight.h"
#include "lowbit/ops/matmul.h"
#include "lowbit/util/error.h"
#include "lowbit/util/threads.h"

namespace lowbit {

namespace {

size_t bytes_of(const Linear& l) {
  return l.packed != nullptr ? l.packed->bytes() : static_cast<size_t>(l.out) * l.in * 4;
}

std::string format_of(const Linear& l) {
  return l.packed != nullptr ? l.packed->describe() : "fp32";
}

bool quantized(const Linear& l) {
  return l.packed != nullptr && l.packed->kind != kernels::PackedKind::kBF16;
}

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Seconds per call: passes over `ls` (one call each) until min_seconds have passed.
double time_calls(const std::vector<const Linear*>& ls, const float* x, int m, float* y,
                  double min_seconds) {
  for (const Linear* l : ls) ops::linear(*l, x, m, y);  // warm-up
  long calls = 0;
  const double t0 = now();
  double t = t0;
  do {
    for (const Linear* l : ls) ops::linear(*l, x, m, y);
    calls += static_cast<long>(ls.size());
    t = now();
  } while (t - t0 < min_seconds);
  return (t - t0) / static_cast<double>(calls);
}

}  // namespace

double linear_weight_bytes(const ModelWeights& w) {
  double b = 0;
  for (const LayerWeights& L : w.layers) {
    for (const Linear* l : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) {
      b += static_cast<double>(bytes_of(*l));
    }
  }
  return b + static_cast<double>(bytes_of(w.lm_head));
}

double model_bytes(const ModelWeights& w) {
  const ModelConfig& c = w.cfg;
  double b = linear_weight_bytes(w);
  b += 4.0 * static_cast<double>(c.vocab_size) * c.dim;        // embedding
  b += 4.0 * static_cast<double>(2 * c.n_layers + 1) * c.dim;  // norms
  if (w.lm_head.w != nullptr && w.lm_head.w == w.tok_embeddings) {
    b -= 4.0 * static_cast<double>(c.vocab_size) * c.dim;  // tied: one array
  }
  return b;
}

std::string weights_summary(const ModelWeights& w) {
  std::vector<std::string> formats;
  for (const LayerWeights& L : w.layers) {
    for (const Linear* l : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) {
      const std::string f = format_of(*l);
      if (std::find(formats.begin(), formats.end(), f) == formats.end()) formats.push_back(f);
    }
  }
  std::string s;
  for (const std::string& f : formats) s += (s.empty() ? "" : ", ") + f;
  return s + "; lm_head " + format_of(w.lm_head);
}

std::vector<KernelBenchRow> run_kernel_bench(const ModelWeights& w, const KernelBenchOptions& opt) {
  if (w.layers.empty()) fail("bench", "model has no layers");
  if (opt.m_prefill < 0) fail("bench", "prefill rows must be >= 0");
  set_num_threads(opt.threads);
  struct Role {
    const char* name;
    Linear LayerWeights::*member;
  };
  const Role roles[] = {{"q_proj", &LayerWeights::wq},        {"k_proj", &LayerWeights::wk},
                        {"v_proj", &LayerWeights::wv},        {"o_proj", &LayerWeights::wo},
                        {"gate_proj", &LayerWeights::w_gate}, {"up_proj", &LayerWeights::w_up},
                        {"down_proj", &LayerWeights::w_down}};
  std::vector<std::pair<std::string, std::vector<const Linear*>>> groups;
  for (const Role& r : roles) {
    std::vector<const Linear*> ls;
    for (const LayerWeights& L : w.layers) ls.push_back(&(L.*r.member));
    groups.emplace_back(r.name, ls);
  }
  groups.emplace_back("lm_head", std::vector<const Linear*>{&w.lm_head});

  int max_in = 0, max_out = 0;
  for (auto& g : groups) {
    max_in = std::max(max_in, g.second[0]->in);
    max_out = std::max(max_out, g.second[0]->out);
  }
  const int m_max = std::max(1, opt.m_prefill);
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(m_max) * max_in),
      y(static_cast<size_t>(m_max) * max_out);
  for (float& v : x) v = nd(rng);

  std::vector<KernelBenchRow> rows;
  const kernels::ActMode saved = kernels::act_mode();
  for (auto& [role, ls] : groups) {
    const Linear& l0 = *ls[0];
    std::vector<kernels::ActMode> modes = {saved};
    if (quantized(l0) && opt.both_modes) modes = {kernels::ActMode::kInt8, kernels::ActMode::kF32};
    if (quantized(l0) && l0.packed->kind == kernels::PackedKind::kLut4) {
      modes = {kernels::ActMode::kF32};
    }
    for (kernels::ActMode mode : modes) {
      kernels::set_act_mode(mode);
      for (int m : {1, opt.m_prefill}) {
        if (m == 0) continue;
        KernelBenchRow r;
        r.role = role;
        r.out = l0.out;
        r.in = l0.in;
        r.layers = static_cast<int>(ls.size());
        r.format = format_of(l0);
        r.act = !quantized(l0) ? "f32" : mode == kernels::ActMode::kF32 ? "f32" : "int8";
        r.m = m;
        r.weight_bytes = bytes_of(l0);
        r.seconds = time_calls(ls, x.data(), m, y.data(), opt.min_seconds);
        r.gbs = static_cast<double>(r.weight_bytes) / r.seconds * 1e-9;
        r.gops = 2.0 * m * l0.out * static_cast<double>(l0.in) / r.seconds * 1e-9;
        rows.push_back(r);
      }
    }
  }
  kernels::set_act_mode(saved);
  return rows;
}

}  // namespace lowbit
