// libFuzzer target: arbitrary bytes as a quantization recipe file (parse_recipe). Only
// lowbit::Error may escape. An accepted recipe is applied to a few module names the way quantize
// does (validate_rules, then scheme_for each module); a rule may still make an invalid scheme
// there (an Error), but any scheme it returns must be valid.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "lowbit/formats/scheme.h"
#include "lowbit/quant/recipe.h"
#include "lowbit/util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  lowbit::QuantScheme base;  // int4 g128 asym f16 scales, the CLI's default
  lowbit::Recipe r;
  try {
    r = lowbit::parse_recipe("fuzz/recipe.json", text, base);
  } catch (const lowbit::Error&) {
    return 0;  // expected for malformed input
  }
  try {
    lowbit::validate_scheme("fuzz: default", r.base);
  } catch (const lowbit::Error&) {
    std::abort();  // an accepted recipe's default must be a valid scheme
  }
  try {
    r.validate_rules();
    for (const char* name : {"model.layers.0.self_attn.q_proj", "model.layers.1.mlp.down_proj",
                             "model.layers.10.mlp.gate_proj", "lm_head", "model.embed_tokens"}) {
      const auto s = r.scheme_for(name);
      if (s) {
        try {
          lowbit::validate_scheme(name, *s);
        } catch (const lowbit::Error&) {
          std::abort();
        }
      }
    }
    r.unmatched();
  } catch (const lowbit::Error&) {
  }
  return 0;
}
