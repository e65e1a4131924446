#include "lowbit/formats/quantized_config.h"

#include <fmt/format.h>

#include <map>

#include "lowbit/formats/checkpoint_layout.h"
#include "lowbit/formats/scheme_fields.h"
#include "lowbit/io/json_read.h"
#include "lowbit/tokenizer/regex.h"
#include "lowbit/util/error.h"

namespace lowbit {

using json = nlohmann::json;

namespace {

// "^<s with regex metacharacters escaped>$".
std::string anchored_literal(const std::string& s) {
  std::string out = "^";
  for (char c : s) {
    if (std::string(".^$|()[]{}*+?\\").find(c) != std::string::npos) out += '\\';
    out += c;
  }
  out += '$';
  return out;
}

bool gptq_expressible(const QuantScheme& s) {
  return s.type == WeightType::kInt && s.scale_type == ScaleType::kF16;
}

QuantScheme scheme_from_entry(const std::string& where, const json& e) {
  QuantScheme s;
  json fields = e;
  fields.erase("layout");
  fields.erase("act");
  fields.erase("smooth_scale");
  return apply_scheme_fields(where, s, fields);
}

}  // namespace

json quantization_config_for(const QuantScheme& base, const json& modules, bool desc_act,
                             bool static_groups, int gptq_version, const std::string& algo) {
  // The GPTQ block only when every quantized module really is in the GPTQ layout: a folder with
  // lowbit-layout linears cannot be loaded by GPTQ loaders and must not claim to be GPTQ.
  bool all_gptq = true;
  for (const auto& [name, e] : modules.items()) {
    const std::string layout = e.value("layout", "fp");
    if (layout != "fp" && layout != "gptq") all_gptq = false;
    // GPTQ loaders would run a W8A8 module with float activations: not what lowbit measured.
    if (e.contains("act") && e["act"].value("type", "float") != "float") all_gptq = false;
  }
  json qc;
  if (gptq_expressible(base) && all_gptq) {
    qc = gptq_quantization_config(base, desc_act, static_groups, gptq_version);
    json dynamic = json::object();
    for (const auto& [name, e] : modules.items()) {
      const std::string key = anchored_literal(name);
      const std::string layout = e.value("layout", "fp");
      if (layout == "fp") {
        if (name != "lm_head") dynamic["-:" + key] = json::object();
        continue;
      }
      const QuantScheme s = scheme_from_entry(name, e);
      if (s.bits != base.bits || s.group_size != base.group_size || s.sym != base.sym) {
        dynamic["+:" + key] = {{"bits", s.bits}, {"group_size", s.group_size}, {"sym", s.sym}};
      }
    }
    if (!dynamic.empty()) qc["dynamic"] = dynamic;
    if (modules.contains("lm_head") && modules["lm_head"].value("layout", "fp") != "fp") {
      qc["lm_head"] = true;
    }
  } else {
    qc = lowbit_quantization_config(base, desc_act);
  }
  qc["lowbit_algo"] = algo;
  qc["lowbit_modules"] = modules;
  return qc;
}

json awq_quantization_config_for(const QuantScheme& base, const json& modules,
                                 const std::string& algo) {
  std::vector<std::string> not_converted;
  for (const auto& [name, e] : modules.items()) {
    const std::string layout = e.value("layout", "fp");
    if (layout == "fp") {
      // transformers and vLLM never quantize the head: it needs no entry.
      if (name != "lm_head") not_converted.push_back(name);
      continue;
    }
    if (layout != "awq") fail(name, "stored in the {} layout, not awq", layout);
    const QuantScheme s = scheme_from_entry(name, e);
    if (s.group_size != base.group_size) {
      fail(name, "group size {} differs from the folder's {} (AWQ has one group size)",
           s.group_size, base.group_size);
    }
  }
  json qc = awq_quantization_config(base, not_converted);
  qc["lowbit_algo"] = algo;
  qc["lowbit_modules"] = modules;
  return qc;
}

QuantizedWeight read_quantized_module(const ModuleStorage& ms, const std::string& prefix,
                                      const TensorLookup& lookup) {
  if (ms.layout == "gptq")
    return from_gptq_tensors(ms.scheme, prefix, lookup, ms.gptq_version, ms.desc_act);
  if (ms.layout == "awq") return from_awq_tensors(ms.scheme, prefix, lookup);
  if (ms.layout == "compressed-tensors") return from_ct_int8_tensors(prefix, lookup);
  if (ms.layout == "lowbit") return from_lowbit_tensors(ms.scheme, prefix, lookup);
  fail(prefix, "module is stored in floating point ({} layout)", ms.layout);
}

QuantizedCheckpointConfig QuantizedCheckpointConfig::parse(const std::string& where,
                                                           const json& qc) {
  try {
    return parse_unchecked(where, qc);
  } catch (const json::exception& e) {  // a field of the wrong JSON type
    fail(where, "bad quantization_config: {}", json_error_text(e));
  }
}

ModuleStorage QuantizedCheckpointConfig::module(const std::string& name, bool has_qweight) const {
  try {
    return module_unchecked(name, has_qweight);
  } catch (const json::exception& e) {
    fail(where_, "bad quantization_config for module {}: {}", name, json_error_text(e));
  }
}

QuantizedCheckpointConfig QuantizedCheckpointConfig::parse_unchecked(const std::string& where,
                                                                     const json& qc) {
  QuantizedCheckpointConfig c;
  c.where_ = where;
  if (!qc.is_object()) fail(where, "quantization_config is not an object");
  c.method_ = qc.value("quant_method", "");
  if (c.method_ == "compressed-tensors") {
    parse_ct(where, qc, &c);
    return c;
  }
  if (c.method_ != "gptq" && c.method_ != "lowbit" && c.method_ != "awq") {
    fail(where,
         "quant_method '{}' is not supported (lowbit loads gptq, awq, lowbit and "
         "compressed-tensors checkpoints)",
         c.method_);
  }
  c.base_ = scheme_from_quantization_config(where, qc, &c.gptq_version_);
  if (c.method_ == "awq" && qc.contains("modules_to_not_convert") &&
      !qc["modules_to_not_convert"].is_null()) {
    if (!qc["modules_to_not_convert"].is_array())
      fail(where, "modules_to_not_convert is not a list");
    for (const json& m : qc["modules_to_not_convert"]) {
      if (!m.is_string()) fail(where, "modules_to_not_convert holds {}, not a name", m.dump());
      c.awq_skip_.push_back(m.get<std::string>());
    }
  }
  for (const char* key : {"desc_act", "lm_head"}) {
    if (qc.contains(key) && !qc[key].is_boolean()) fail(where, "'{}' must be true or false", key);
  }
  if (qc.contains("desc_act")) {
    c.desc_act_ = qc["desc_act"].get<bool>();
  } else if (c.method_ == "gptq") {
    c.desc_act_ = false;  // the GPTQ default
  }
  c.lm_head_ = qc.value("lm_head", false);
  if (qc.contains("lowbit_modules")) {
    if (!qc["lowbit_modules"].is_object()) fail(where, "lowbit_modules is not an object");
    c.modules_ = qc["lowbit_modules"];
  }
  if (qc.contains("dynamic") && qc["dynamic"].is_object()) {
    for (const auto& [key, v] : qc["dynamic"].items()) {
      Dynamic d;
      std::string pat = key;
      if (pat.rfind("-:", 0) == 0) {
        d.skip = true;
        pat = pat.substr(2);
      } else if (pat.rfind("+:", 0) == 0) {
        pat = pat.substr(2);
      }
      d.regex = pat;
      if (!v.is_object()) fail(where, "dynamic entry '{}' is not an object", key);
      d.fields = json::object();
      for (const char* k : {"bits", "group_size", "sym"}) {
        if (v.contains(k)) d.fields[k] = v[k];
      }
      // PCRE2 (as Python's re, which GPTQModel uses), anchored at the start like re.match; its
      // match limits bound the time a hostile pattern can take.
      std::string anchored = "^(?:";
      anchored.append(pat).append(")");
      std::string what = where;
      what.append(": dynamic entry '").append(key).append("'");
      d.re = std::make_shared<Regex>(anchored, what);
      c.dynamic_.push_back(std::move(d));
    }
  }
  return c;
}

ModuleStorage QuantizedCheckpointConfig::module_unchecked(const std::string& name,
                                                          bool has_qweight) const {
  ModuleStorage m;
  m.gptq_version = gptq_version_;
  m.desc_act = desc_act_;
  if (!modules_.is_null()) {
    if (!modules_.contains(name)) {
      if (has_qweight) fail(where_, "lowbit_modules has no entry for quantized module {}", name);
      return m;
    }
    const json& e = modules_[name];
    m.layout = e.value("layout", "fp");
    if (m.layout == "fp" && has_qweight) {
      fail(where_, "lowbit_modules says {} is floating point but {}.qweight is present", name,
           name);
    }
    if (m.layout == "fp") return m;
    if (m.layout != "gptq" && m.layout != "lowbit" && m.layout != "awq" &&
        m.layout != "compressed-tensors") {
      fail(where_, "module {}: unknown layout '{}'", name, m.layout);
    }
    m.scheme = scheme_from_entry(where_ + ": module " + name, e);
    if (e.contains("act")) m.act = act_scheme_from_json(where_ + ": module " + name, e["act"]);
    if (e.contains("smooth_scale")) {
      if (!e["smooth_scale"].is_boolean())
        fail(where_, "module {}: smooth_scale must be true or false", name);
      m.smooth_scale = e["smooth_scale"].get<bool>();
    }
    return m;
  }
  if (method_ == "compressed-tensors") return ct_module(name, has_qweight);
  if (method_ == "gptq" && name == "lm_head" && has_qweight != lm_head_) {
    fail(where_, "quantization_config says lm_head is {}quantized but lm_head.qweight is {}",
         lm_head_ ? "" : "not ", has_qweight ? "present" : "missing");
  }
  if (!has_qweight) return m;
  m.scheme = base_;
  if (method_ == "awq") {
    for (const std::string& skip : awq_skip_) {
      if (name.find(skip) != std::string::npos)  // Python's `skip in name`
        fail(where_, "module {} is in modules_to_not_convert ('{}') but has a qweight", name, skip);
    }
    m.layout = "awq";
    return m;
  }
  m.layout = method_ == "gptq" ? "gptq" : "lowbit";
  for (const Dynamic& d : dynamic_) {
    if (d.re->find_all(name).empty()) continue;
    if (d.skip) {
      fail(where_, "module {} is excluded by dynamic '{}' but has a qweight", name, d.regex);
    }
    m.scheme = apply_scheme_fields(where_ + ": dynamic " + d.regex, m.scheme, d.fields);
    break;
  }
  return m;
}

// ---- compressed-tensors ----------------------------------------------------------------------

namespace {

json ct_weight_args() {
  return {{"num_bits", 8},         {"type", "int"},
          {"symmetric", true},     {"strategy", "channel"},
          {"group_size", nullptr}, {"block_structure", nullptr},
          {"dynamic", false},      {"actorder", nullptr},
          {"observer", "minmax"},  {"observer_kwargs", json::object()}};
}

json ct_act_args(const std::string& where, const ActScheme& a) {
  if (a.granularity == ActGranularity::kBlock)
    fail(where, "compressed-tensors has no per-block activation scheme (use token or tensor)");
  const bool stat = a.granularity == ActGranularity::kTensor;
  if (stat && !a.sym)
    fail(where,
         "compressed-tensors stores integer activation zero points: static asymmetric activations "
         "cannot be written (use --act-static without --act-asym, or per-token)");
  return {{"num_bits", 8},
          {"type", "int"},
          {"symmetric", a.sym},
          {"strategy", stat ? "tensor" : "token"},
          {"group_size", nullptr},
          {"block_structure", nullptr},
          {"dynamic", !stat},
          {"actorder", nullptr},
          {"observer", stat ? json("minmax") : json(nullptr)},
          {"observer_kwargs", json::object()}};
}

// A target or ignore entry matches a module: the exact name, "re:REGEX" (whole name), or the
// class "Linear" (every module asked about is a linear).
bool ct_matches(const std::string& where, const std::string& target, const std::string& name) {
  if (target == "Linear" || target == name) return true;
  if (target.rfind("re:", 0) != 0) return false;
  const Regex re(target.substr(3), where);
  for (const auto& [b, e] : re.find_all(name)) {
    if (b == 0 && e == name.size()) return true;
  }
  return false;
}

}  // namespace

json ct_quantization_config(const json& modules) {
  std::map<std::string, std::vector<std::string>> by_act;  // act JSON → module names
  std::map<std::string, json> act_of;
  json ignore = json::array();
  for (const auto& [name, e] : modules.items()) {
    if (e.value("layout", "fp") == "fp") {
      ignore.push_back(name);
      continue;
    }
    const json act = e.contains("act") ? e["act"] : json(nullptr);
    by_act[act.dump()].push_back(name);
    act_of[act.dump()] = act;
  }
  json groups = json::object();
  int g = 0;
  for (const auto& [key, names] : by_act) {
    const json& act = act_of[key];
    json ia = nullptr;
    if (!act.is_null()) {
      const ActScheme a = act_scheme_from_json("compressed-tensors", act);
      if (a.quantized) ia = ct_act_args("compressed-tensors: " + names[0], a);
    }
    groups[fmt::format("group_{}", g++)] = {{"targets", names},
                                            {"weights", ct_weight_args()},
                                            {"input_activations", ia},
                                            {"output_activations", nullptr},
                                            {"format", "int-quantized"}};
  }
  return {{"quant_method", "compressed-tensors"},
          {"format", "int-quantized"},
          {"quantization_status", "compressed"},
          {"config_groups", groups},
          {"ignore", ignore},
          {"kv_cache_scheme", nullptr},
          {"sparsity_config", json::object()},
          {"lowbit_modules", modules}};
}

void QuantizedCheckpointConfig::parse_ct(const std::string& where, const json& qc,
                                         QuantizedCheckpointConfig* c) {
  const std::string fmt_name = qc.value("format", "int-quantized");
  if (fmt_name != "int-quantized")
    fail(where, "compressed-tensors format '{}' is not supported (lowbit reads int-quantized)",
         fmt_name);
  if (qc.contains("lowbit_modules")) {
    if (!qc["lowbit_modules"].is_object()) fail(where, "lowbit_modules is not an object");
    c->modules_ = qc["lowbit_modules"];
    return;
  }
  if (qc.contains("ignore")) {
    if (!qc["ignore"].is_array()) fail(where, "compressed-tensors 'ignore' is not a list");
    for (const json& t : qc["ignore"]) c->ct_ignore_.push_back(t.get<std::string>());
  }
  if (!qc.contains("config_groups") || !qc["config_groups"].is_object())
    fail(where, "compressed-tensors config has no config_groups");
  for (const auto& [gname, g] : qc["config_groups"].items()) {
    const std::string gw = where + ": config group " + gname;
    CtGroup grp;
    if (!g.is_object() || !g.contains("targets") || !g["targets"].is_array())
      fail(gw, "needs a list of targets");
    for (const json& t : g["targets"]) grp.targets.push_back(t.get<std::string>());
    const json& w = g.contains("weights") ? g["weights"] : json(nullptr);
    if (!w.is_object() || w.value("type", "") != "int" || w.value("num_bits", 0) != 8 ||
        !w.value("symmetric", false) || w.value("strategy", "") != "channel")
      fail(gw, "only int8 symmetric per-channel weights are supported, got {}", w.dump());
    const json& ia = g.contains("input_activations") ? g["input_activations"] : json(nullptr);
    if (!ia.is_null()) {
      if (!ia.is_object() || ia.value("type", "") != "int" || ia.value("num_bits", 0) != 8)
        fail(gw, "only int8 input activations are supported, got {}", ia.dump());
      ActScheme a;
      a.quantized = true;
      a.sym = ia.value("symmetric", true);
      const std::string strat = ia.value("strategy", "");
      if (strat == "token" && ia.value("dynamic", true)) {
        a.granularity = ActGranularity::kToken;
      } else if (strat == "tensor" && !ia.value("dynamic", false) && a.sym) {
        a.granularity = ActGranularity::kTensor;
      } else {
        fail(gw,
             "unsupported input activations {} (lowbit runs dynamic per-token and static "
             "symmetric per-tensor)",
             ia.dump());
      }
      grp.act = a;
    }
    c->ct_groups_.push_back(std::move(grp));
  }
}

ModuleStorage QuantizedCheckpointConfig::ct_module(const std::string& name, bool has_scale) const {
  ModuleStorage m;
  if (!has_scale) return m;  // stored in floating point
  for (const std::string& t : ct_ignore_) {
    if (ct_matches(where_, t, name))
      fail(where_, "module {} is in 'ignore' but {}.weight_scale is present", name, name);
  }
  for (const CtGroup& g : ct_groups_) {
    for (const std::string& t : g.targets) {
      if (!ct_matches(where_, t, name)) continue;
      m.layout = "compressed-tensors";
      m.scheme.type = WeightType::kInt;
      m.scheme.bits = 8;
      m.scheme.sym = true;
      m.scheme.group_size = -1;
      m.act = g.act ? *g.act : ActScheme{};
      return m;
    }
  }
  fail(where_, "module {} is quantized but no config group targets it", name);
}

}  // namespace lowbit
