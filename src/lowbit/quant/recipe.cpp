#include "lowbit/quant/recipe.h"

#include <fnmatch.h>

#include "lowbit/io/json_int.h"
#include "lowbit/io/json_read.h"
#include "lowbit/io/limits.h"
#include "lowbit/util/error.h"

namespace lowbit {

using json = nlohmann::json;

bool glob_match(const std::string& pattern, const std::string& name) {
  return fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
}

namespace {

bool is_default_fp(const std::string& name) {
  return name == "lm_head" || name == "model.embed_tokens";
}

}  // namespace

std::optional<QuantScheme> Recipe::scheme_for(const std::string& name) const {
  std::optional<QuantScheme> s;
  if (!is_default_fp(name)) s = base;
  const bool fp_default = is_default_fp(name);
  for (const RecipeRule& r : rules) {
    if (!glob_match(r.pattern, name)) continue;
    // lm_head and the embeddings are only touched by rules that name them ("lm_head",
    // "*.embed_tokens"), not by broad globs like "*".
    if (fp_default &&
        r.pattern.find(name == "lm_head" ? "lm_head" : "embed_tokens") == std::string::npos) {
      continue;
    }
    ++r.matches;
    if (r.skip) {
      s.reset();
    } else {
      s = apply_scheme_fields("rule '" + r.pattern + "'", s.value_or(base), r.fields);
    }
  }
  return s;
}

std::vector<std::string> Recipe::unmatched() const {
  std::vector<std::string> out;
  for (const RecipeRule& r : rules) {
    if (r.matches == 0) out.push_back(r.pattern);
  }
  return out;
}

void Recipe::validate_rules() const {
  for (const RecipeRule& r : rules) {
    if (!r.skip) apply_scheme_fields("rule '" + r.pattern + "'", base, r.fields);
  }
}

namespace {

// The recipe in the parsed document `j`; `path` names it in errors.
Recipe recipe_from_json(const std::string& path, const json& j, const QuantScheme& base) {
  if (!j.is_object()) fail(path, "a recipe must be a JSON object with 'default' and 'rules'");
  Recipe r;
  r.base = base;
  for (const auto& [key, v] : j.items()) {
    if (key != "default" && key != "rules") {
      fail(path, "unknown key '{}' (expected default, rules)", key);
    }
  }
  if (j.contains("default")) r.base = apply_scheme_fields(path + ": default", base, j["default"]);
  if (j.contains("rules")) {
    if (!j["rules"].is_array()) fail(path, "'rules' must be an array");
    size_t i = 0;
    for (const json& rule : j["rules"]) {
      const std::string where = fmt::format("{}: rule {}", path, i++);
      if (!rule.is_object() || !rule.contains("match") || !rule["match"].is_string()) {
        fail(where, "needs a string 'match'");
      }
      RecipeRule rr;
      rr.pattern = rule["match"].get<std::string>();
      if (rule.contains("skip")) {
        if (!rule["skip"].is_boolean()) fail(where, "'skip' must be true or false");
        rr.skip = rule["skip"].get<bool>();
      }
      rr.fields = rule;
      apply_scheme_fields(where, r.base, rule);  // validate now, not mid-run
      r.rules.push_back(std::move(rr));
    }
  }
  return r;
}

}  // namespace

Recipe parse_recipe(const std::string& where, std::string_view text, const QuantScheme& base) {
  return recipe_from_json(where, parse_json(where, text), base);
}

Recipe load_recipe_file(const std::string& path, const QuantScheme& base) {
  return recipe_from_json(path, read_json_file(path, kMaxRecipeBytes, "recipe"), base);
}

RecipeRule parse_override(const std::string& spec) {
  const std::string where = "--override '" + spec + "'";
  const size_t colon = spec.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == spec.size()) {
    fail(where, "expected PATTERN:key=value[,key=value...] or PATTERN:fp");
  }
  RecipeRule r;
  r.pattern = spec.substr(0, colon);
  const std::string rest = spec.substr(colon + 1);
  if (rest == "fp" || rest == "skip") {
    r.skip = true;
    r.fields = json::object();
    return r;
  }
  r.fields = json::object();
  size_t pos = 0;
  while (pos <= rest.size()) {
    size_t comma = rest.find(',', pos);
    if (comma == std::string::npos) comma = rest.size();
    const std::string kv = rest.substr(pos, comma - pos);
    const size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) fail(where, "'{}' is not key=value", kv);
    const std::string key = kv.substr(0, eq), val = kv.substr(eq + 1);
    if (key == "bits" || key == "group_size") {
      try {
        size_t used = 0;
        const int v = std::stoi(val, &used);
        if (used != val.size()) throw std::invalid_argument(val);
        r.fields[key] = v;
      } catch (const std::exception&) {
        fail(where, "{} must be an integer, got '{}'", key, val);
      }
    } else if (key == "sym" || key == "int4_clip") {
      if (val != "true" && val != "false") fail(where, "{} must be true or false", key);
      r.fields[key] = val == "true";
    } else {
      r.fields[key] = val;
    }
    pos = comma + 1;
  }
  // Keys and value types are checked now; whether the result is a valid scheme depends on the
  // scheme it applies to (validate_rules, once the default is known).
  QuantScheme any;
  any.sym = true;
  try {
    apply_scheme_fields(where, any, r.fields);
  } catch (const Error&) {
    any.sym = false;
    apply_scheme_fields(where, any, r.fields);
  }
  return r;
}

}  // namespace lowbit
