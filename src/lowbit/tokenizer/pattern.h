// The pattern of Replace / Split components: {"String": "..."} (a literal) or {"Regex": "..."}.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lowbit/tokenizer/regex.h"

namespace lowbit {

struct Pattern {
  std::string literal;           // used when regex is null
  std::shared_ptr<Regex> regex;  // set for {"Regex": ...}
};

Pattern parse_pattern(const nlohmann::json& j, const std::string& where);
// Non-overlapping matches [begin, end), left to right.
std::vector<std::pair<size_t, size_t>> find_matches(const Pattern& p, std::string_view text);
// Text with every match replaced by `content`.
std::string replace_all(const Pattern& p, std::string_view text, std::string_view content);

}  // namespace lowbit
