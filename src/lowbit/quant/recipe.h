// A quantization recipe: the default scheme plus per-layer overrides and skips matched by name
// pattern. Patterns are shell globs (fnmatch: `*` also crosses dots) over module names without
// the ".weight" suffix, e.g. "*.mlp.down_proj", "model.layers.0.*", "lm_head". Later rules win.
// lm_head and the embeddings (model.embed_tokens) stay unquantized unless a rule names them: only
// rules whose pattern contains "lm_head" / "embed_tokens" apply to them, not broad globs ("*").
//
// JSON recipe file (docs/QUANTIZE.md):
//   {"default": {"weight_type": "int4", "group_size": 128, "sym": false, "scale_dtype": "f16"},
//    "rules": [{"match": "*.mlp.down_proj", "bits": 8},
//              {"match": "model.layers.0.*", "skip": true}]}
// Rule keys: match (required), skip, weight_type, bits (int weights), group_size, sym,
// int4_clip, scale_dtype. Unknown keys are errors (a typo must not silently do nothing).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/formats/scheme.h"
#include "lowbit/formats/scheme_fields.h"

namespace lowbit {

struct RecipeRule {
  std::string pattern;
  bool skip = false;
  nlohmann::json fields;  // scheme fields this rule sets (object), applied over the default
  mutable int matches = 0;
};

struct Recipe {
  QuantScheme base;
  std::vector<RecipeRule> rules;

  // The scheme of module `name`, nullopt = keep it in floating point. Counts rule matches.
  // Throws Error("<where>: ...") when a rule makes an invalid scheme.
  std::optional<QuantScheme> scheme_for(const std::string& name) const;
  // Applies every rule over the default scheme, so that a rule making an invalid scheme (e.g.
  // int4_clip over an asymmetric default) fails before any work. Throws Error("rule '...': ...").
  void validate_rules() const;
  // Patterns of rules that matched no module so far (a warning after the run).
  std::vector<std::string> unmatched() const;
};

// Reads a recipe file; its "default" (if any) is applied over `base` (the CLI's scheme).
Recipe load_recipe_file(const std::string& path, const QuantScheme& base);
// The same over the text of a recipe file; `where` names it in errors.
Recipe parse_recipe(const std::string& where, std::string_view text, const QuantScheme& base);
// A CLI override "PATTERN:key=value,key=value" (keys as in JSON rules; "fp" or "skip" alone
// means skip), e.g. "*.mlp.down_proj:bits=8,group_size=-1".
RecipeRule parse_override(const std::string& spec);

bool glob_match(const std::string& pattern, const std::string& name);

}  // namespace lowbit
