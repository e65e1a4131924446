// The quantization_config block of a quantized model's config.json, written by the pipeline and
// read by the loader (docs/QUANT_FORMATS.md, "Whole-model folders").
//
// Written: when the default scheme is GPTQ-expressible and every quantized linear is in the GPTQ
// layout, the GPTQ block (quant_method "gptq", as
// HF transformers / vLLM / AutoGPTQ read it) plus "dynamic" entries (GPTQModel's per-module
// overrides: "+:^name$": {bits, group_size, sym}; "-:^name$": {} = not quantized) for every module
// that differs from the default; otherwise the lowbit block (quant_method "lowbit"). Both carry
// "lowbit_modules": {module name: {"layout": "gptq"|"lowbit"|"fp", weight_type, group_size,
// sym, int4_clip, scale_dtype}}, the exact storage of each linear, which lowbit's loader prefers.
//
// Read: "lowbit_modules" when present; else (a published GPTQ checkpoint) the block's scheme,
// "dynamic" overrides matched by regex, and the tensors present (".qweight" = quantized).
//
// AWQ (quant_method "awq", AutoAWQ's GEMM packing, --format awq): one scheme for every quantized
// module (int4, the block's group size), FP linears listed in "modules_to_not_convert" (matched as
// substrings of the module name, as transformers and vLLM do), plus lowbit_modules when lowbit
// wrote it.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "lowbit/formats/act_scheme.h"
#include "lowbit/formats/checkpoint_layout.h"
#include "lowbit/formats/scheme.h"

namespace lowbit {

class Regex;

nlohmann::json quantization_config_for(const QuantScheme& base, const nlohmann::json& modules,
                                       bool desc_act, bool static_groups, int gptq_version,
                                       const std::string& algo);

// The compressed-tensors block (quant_method "compressed-tensors", format "int-quantized", as
// llm-compressor writes W8A8 for vLLM and transformers) for modules stored in that layout: one
// config group per activation scheme (weights int8 per-channel symmetric; input_activations per
// token or per tensor, or null for weight-only modules), FP modules in "ignore", and lowbit's own
// "lowbit_modules". Throws Error for what the format cannot express (block activations, static
// asymmetric ones: its zero points are integers).
nlohmann::json ct_quantization_config(const nlohmann::json& modules);

// The AWQ block (awq_quantization_config) for modules all stored in the AWQ layout with one
// scheme: FP linears other than lm_head go to modules_to_not_convert; lowbit_algo and
// lowbit_modules are added. Throws Error("<module>: ...") for a module in another layout or with
// another group size.
nlohmann::json awq_quantization_config_for(const QuantScheme& base, const nlohmann::json& modules,
                                           const std::string& algo);

// How one module is stored.
struct ModuleStorage {
  std::string layout = "fp";  // "gptq", "lowbit", "awq", "compressed-tensors" or "fp"
  QuantScheme scheme;
  int gptq_version = 1;
  // desc_act of the config: whether columns are stored in act-order (a g_idx is then required);
  // unknown for lowbit blocks written before it was recorded.
  std::optional<bool> desc_act;
  // lowbit_modules "act": how the module's input is quantized (W8A8); a static scheme's scale is
  // in the tensors <name>.input_scale (and .input_zero_point), read by the loader.
  std::optional<ActScheme> act;
  // lowbit_modules "smooth_scale": true — the input is divided by <name>.smooth_scale [in] first
  // (SmoothQuant --no-fold).
  bool smooth_scale = false;
};

class QuantizedCheckpointConfig {
 public:
  // Parses the quantization_config block; `where` (config.json path) names it in errors.
  // Throws Error for unsupported quant methods (awq, bitsandbytes, ...) or invalid fields.
  static QuantizedCheckpointConfig parse(const std::string& where, const nlohmann::json& qc);
  // Storage of module `name`; `has_qweight`: whether "<name>.qweight" is in the checkpoint (used
  // when the config has no lowbit_modules).
  ModuleStorage module(const std::string& name, bool has_qweight) const;
  const std::string& method() const { return method_; }
  // The tensor whose presence marks a module as quantized: "<name>.qweight", or for
  // compressed-tensors "<name>.weight_scale".
  const char* quantized_suffix() const {
    return method_ == "compressed-tensors" ? ".weight_scale" : ".qweight";
  }

 private:
  static QuantizedCheckpointConfig parse_unchecked(const std::string& where,
                                                   const nlohmann::json& qc);
  ModuleStorage module_unchecked(const std::string& name, bool has_qweight) const;
  std::string where_, method_;
  QuantScheme base_;
  int gptq_version_ = 1;
  std::optional<bool> desc_act_;
  bool lm_head_ = false;    // GPTQ block: "lm_head" (quantized lm_head)
  nlohmann::json modules_;  // lowbit_modules or null
  struct Dynamic {
    std::string regex;
    std::shared_ptr<Regex> re;
    bool skip = false;
    nlohmann::json fields;
  };
  std::vector<Dynamic> dynamic_;
  // compressed-tensors without lowbit_modules: config groups and ignore list.
  struct CtGroup {
    std::vector<std::string> targets;
    std::optional<ActScheme> act;  // null input_activations: none
  };
  std::vector<CtGroup> ct_groups_;
  std::vector<std::string> ct_ignore_;
  std::vector<std::string> awq_skip_;  // AWQ without lowbit_modules: modules_to_not_convert
  ModuleStorage ct_module(const std::string& name, bool has_scale) const;
  static void parse_ct(const std::string& where, const nlohmann::json& qc,
                       QuantizedCheckpointConfig* c);
};

// The quantized weight of module `prefix` read from its tensors in the layout `ms` names (not
// "fp"). Throws Error("<file>: ...") on any mismatch.
QuantizedWeight read_quantized_module(const ModuleStorage& ms, const std::string& prefix,
                                      const TensorLookup& lookup);

}  // namespace lowbit
