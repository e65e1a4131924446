// libFuzzer target: arbitrary bytes as a Hugging Face config.json (parse_hf_config). Only
// lowbit::Error may escape. A config lowbit accepts must survive its own writer: the
// to_hf_config_json text of it must parse back to the same ModelConfig.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

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
