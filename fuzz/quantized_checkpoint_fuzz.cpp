// libFuzzer target: a quantized checkpoint as lowbit loads it. Input = quantization_config JSON,
// a NUL byte, then a safetensors file. The config is parsed, and every "<prefix>.qweight" in the
// file is read in the layout the config gives it and dequantized. Only lowbit::Error may escape;
// dequantized sizes must agree with the declared shapes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lowbit/formats/checkpoint_layout.h"
#include "lowbit/formats/quantized_config.h"
#include "lowbit/io/safetensors.h"
#include "lowbit/util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const void* nul = std::memchr(data, 0, size);
  if (nul == nullptr) return 0;
  const size_t json_len = static_cast<const uint8_t*>(nul) - data;
  const auto j = nlohmann::json::parse(std::string(reinterpret_cast<const char*>(data), json_len),
                                       nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return 0;
  try {
    const auto qc = lowbit::QuantizedCheckpointConfig::parse("fuzz/config.json", j);
    auto f = lowbit::SafetensorsFile::from_memory(
        "fuzz.safetensors", std::vector<uint8_t>(data + json_len + 1, data + size));
    const lowbit::TensorLookup lookup = [&](const std::string& n) { return f->find(n); };
    for (const auto& t : f->tensors()) {
      const std::string suffix = qc.quantized_suffix();
      if (t.name.size() <= suffix.size() ||
          t.name.compare(t.name.size() - suffix.size(), suffix.size(), suffix) != 0) {
        continue;
      }
      const std::string prefix = t.name.substr(0, t.name.size() - suffix.size());
      try {
        const lowbit::ModuleStorage m = qc.module(prefix, true);
        if (m.layout == "fp") continue;
        const lowbit::QuantizedWeight w = lowbit::read_quantized_module(m, prefix, lookup);
        const std::vector<float> d = w.dequantize();
        if (d.size() != static_cast<size_t>(w.out) * static_cast<size_t>(w.in)) std::abort();
      } catch (const lowbit::Error&) {
      }
    }
  } catch (const lowbit::Error&) {
  }
  return 0;
}
