// libFuzzer target: arbitrary bytes as a Hugging Face config.json (parse_hf_config, every family's
// entry of the architecture table). Only lowbit::Error may escape. For an accepted config, what the
// table derives must be consistent: every tensor's shape, fused tensors splitting into parts that
// cover their rows, the block's linears and input groups. A Llama-family config must also survive
// lowbit's own writer (to_hf_config_json, which writes those families only): its text must parse
// back to the same ModelConfig.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "lowbit/model/arch.h"
#include "lowbit/model/config.h"
#include "lowbit/util/error.h"

namespace {

bool same(const lowbit::ModelConfig& a, const lowbit::ModelConfig& b) {
  return a.architecture == b.architecture && a.family == b.family && a.dim == b.dim &&
         a.hidden_dim == b.hidden_dim && a.n_layers == b.n_layers && a.n_heads == b.n_heads &&
         a.n_kv_heads == b.n_kv_heads && a.head_dim == b.head_dim && a.vocab_size == b.vocab_size &&
         a.max_seq_len == b.max_seq_len && a.norm_eps == b.norm_eps &&
         a.rope_theta == b.rope_theta && a.rope_scaling.type == b.rope_scaling.type &&
         a.rope_scaling.factor == b.rope_scaling.factor &&
         a.rope_scaling.low_freq_factor == b.rope_scaling.low_freq_factor &&
         a.rope_scaling.high_freq_factor == b.rope_scaling.high_freq_factor &&
         a.rope_scaling.original_max_position_embeddings ==
             b.rope_scaling.original_max_position_embeddings &&
         a.tied_embeddings == b.tied_embeddings && a.qkv_bias == b.qkv_bias &&
         a.bos_id == b.bos_id && a.eos_id == b.eos_id;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  lowbit::ModelConfig cfg;
  try {
    cfg = lowbit::parse_hf_config("fuzz/config.json", text);
  } catch (const lowbit::Error&) {
    return 0;  // expected for malformed input
  }
  const lowbit::ArchSpec* arch = lowbit::find_arch(cfg.architecture);
  if (arch == nullptr) std::abort();
  for (const lowbit::TensorSpec& spec : arch->tensors) {
    if (!lowbit::tensor_present(spec, cfg)) continue;
    for (int64_t d : lowbit::expected_shape(spec, cfg)) {
      if (d <= 0) std::abort();
    }
  }
  // Fused tensors: the parts' rows are a partition of the tensor's rows (kept to small shapes).
  const int64_t qkv_rows = int64_t{cfg.q_dim()} + 2 * int64_t{cfg.kv_dim()};
  if (cfg.qkv_layout != lowbit::QkvLayout::kSeparate && qkv_rows <= (1 << 16)) {
    std::vector<char> hit(static_cast<size_t>(qkv_rows), 0);
    for (const auto& part : lowbit::fused_rows(lowbit::TensorRole::kWqkv, cfg)) {
      for (int r : part) {
        if (r < 0 || r >= qkv_rows || hit[static_cast<size_t>(r)]++) std::abort();
      }
    }
    for (char h : hit) {
      if (!h) std::abort();
    }
  }
  const std::vector<lowbit::BlockLinear> lins = lowbit::block_linears(cfg);
  size_t grouped = 0;
  for (const lowbit::InputGroup& g : lowbit::block_input_groups(cfg)) grouped += g.linears.size();
  if (lins.empty() || grouped != lins.size()) std::abort();
  if (cfg.family != "llama" && cfg.family != "mistral" && cfg.family != "qwen2") return 0;
  // Accepted: writing it out and reading it back must give the same model.
  try {
    const lowbit::ModelConfig back =
        lowbit::parse_hf_config("fuzz/written.json", lowbit::to_hf_config_json(cfg));
    if (!same(cfg, back)) std::abort();
  } catch (const lowbit::Error&) {
    std::abort();  // lowbit wrote a config.json it cannot read
  }
  return 0;
}
