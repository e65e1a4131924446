#include "lowbit/formats/act_scheme.h"

#include <algorithm>
#include <cmath>

#include "lowbit/util/error.h"

namespace lowbit {

ActGranularity parse_act_granularity(const std::string& where, const std::string& name) {
  if (name == "block") return ActGranularity::kBlock;
  if (name == "token") return ActGranularity::kToken;
  if (name == "tensor") return ActGranularity::kTensor;
  fail(where, "unknown activation granularity '{}' (expected token, tensor or block)", name);
}

const char* act_granularity_name(ActGranularity g) {
  switch (g) {
    case ActGranularity::kBlock:
      return "block";
    case ActGranularity::kToken:
      return "token";
    case ActGranularity::kTensor:
      return "tensor";
  }
  return "?";
}

std::string act_scheme_name(const ActScheme& a) {
  if (!a.quantized) return "fp";
  std::string s = fmt::format("int8 {}", act_granularity_name(a.granularity));
  if (a.granularity != ActGranularity::kBlock) s += a.sym ? " sym" : " asym";
  if (a.granularity == ActGranularity::kTensor) s += " (static)";
  return s;
}

void validate_act_scheme(const std::string& where, const ActScheme& a) {
  if (!a.quantized) return;
  if (a.granularity == ActGranularity::kBlock && !a.sym)
    fail(where, "block activations are symmetric only");
  if (a.granularity == ActGranularity::kTensor) {
    if (!std::isfinite(a.scale) || a.scale <= 0.0f)
      fail(where, "static activation scale {} must be finite and positive", a.scale);
    if (!std::isfinite(a.zero)) fail(where, "static activation zero point is not finite");
    if (a.sym && a.zero != 0.0f) fail(where, "symmetric activations have no zero point");
  }
}

nlohmann::json act_scheme_json(const ActScheme& a) {
  if (!a.quantized) return {{"type", "float"}};
  return {{"type", "int8"},
          {"granularity", act_granularity_name(a.granularity)},
          {"sym", a.sym},
          {"dynamic", a.granularity != ActGranularity::kTensor}};
}

ActScheme act_scheme_from_json(const std::string& where, const nlohmann::json& j) {
  if (!j.is_object()) fail(where, "activation scheme must be an object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    if (k != "type" && k != "granularity" && k != "sym" && k != "dynamic")
      fail(where, "unknown activation scheme key '{}'", k);
  }
  ActScheme a;
  const auto type = j.find("type");
  if (type == j.end() || !type->is_string()) fail(where, "activation scheme needs a \"type\"");
  if (*type == "float") return a;
  if (*type != "int8")
    fail(where, "unsupported activation type '{}' (expected int8 or float)",
         type->get<std::string>());
  a.quantized = true;
  const auto g = j.find("granularity");
  if (g == j.end() || !g->is_string()) fail(where, "activation scheme needs a \"granularity\"");
  a.granularity = parse_act_granularity(where, g->get<std::string>());
  if (const auto s = j.find("sym"); s != j.end()) {
    if (!s->is_boolean()) fail(where, "\"sym\" must be true or false");
    a.sym = s->get<bool>();
  }
  if (const auto d = j.find("dynamic"); d != j.end()) {
    if (!d->is_boolean()) fail(where, "\"dynamic\" must be true or false");
    if (d->get<bool>() != (a.granularity != ActGranularity::kTensor))
      fail(where, "{} activations are {}", act_granularity_name(a.granularity),
           a.granularity == ActGranularity::kTensor ? "static" : "dynamic");
  }
  if (a.granularity == ActGranularity::kBlock && !a.sym)
    fail(where, "block activations are symmetric only");
  return a;
}

void act_row_params(const ActScheme& a, const float* x, int n, float* s, float* m) {
  if (a.granularity == ActGranularity::kTensor) {
    *s = a.scale;
    *m = a.sym ? 0.0f : a.zero;
    return;
  }
  if (a.sym) {
    float amax = 0.0f;
    for (int k = 0; k < n; ++k) amax = std::max(amax, std::abs(x[k]));
    *m = 0.0f;
    *s = amax > 0.0f ? amax / 127.0f : 1.0f;
    return;
  }
  float lo = x[0], hi = x[0];
  for (int k = 1; k < n; ++k) {
    lo = std::min(lo, x[k]);
    hi = std::max(hi, x[k]);
  }
  *m = 0.5f * (lo + hi);
  *s = hi > lo ? (hi - lo) / 254.0f : 1.0f;
}

}  // namespace lowbit
