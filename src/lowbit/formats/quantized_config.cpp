#include "lowbit/formats/quantized_config.h"

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
  if (c.method_ != "gptq" && c.method_ != "lowbit") {
    fail(where, "quant_method '{}' is not supported (lowbit loads gptq and lowbit checkpoints)",
         c.method_);
  }
  c.base_ = scheme_from_quantization_config(where, qc, &c.gptq_version_);
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
    if (m.layout != "gptq" && m.layout != "lowbit") {
      fail(where_, "module {}: unknown layout '{}'", name, m.layout);
    }
    m.scheme = scheme_from_entry(where_ + ": module " + name, e);
    if (e.contains("act")) m.act = act_scheme_from_json(where_ + ": module " + name, e["act"]);
    return m;
  }
  if (method_ == "gptq" && name == "lm_head" && has_qweight != lm_head_) {
    fail(where_, "quantization_config says lm_head is {}quantized but lm_head.qweight is {}",
         lm_head_ ? "" : "not ", has_qweight ? "present" : "missing");
  }
  if (!has_qweight) return m;
  m.layout = method_ == "gptq" ? "gptq" : "lowbit";
  m.scheme = base_;
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

}  // namespace lowbit
