#include "lowbit/tokenizer/pattern.h"

#include "lowbit/util/error.h"

namespace lowbit {

Pattern parse_pattern(const nlohmann::json& j, const std::string& where) {
  Pattern p;
  if (j.is_object() && j.contains("String") && j["String"].is_string()) {
    p.literal = j["String"].get<std::string>();
  } else if (j.is_object() && j.contains("Regex") && j["Regex"].is_string()) {
    p.regex = std::make_shared<Regex>(j["Regex"].get<std::string>(), where);
  } else if (j.is_string()) {  // very old files: a bare string
    p.literal = j.get<std::string>();
  } else {
    fail(where, "pattern must be {{\"String\": ...}} or {{\"Regex\": ...}}");
  }
  return p;
}

std::vector<std::pair<size_t, size_t>> find_matches(const Pattern& p, std::string_view text) {
  if (p.regex) return p.regex->find_all(text);
  std::vector<std::pair<size_t, size_t>> out;
  if (p.literal.empty()) return out;
  for (size_t pos = text.find(p.literal); pos != std::string_view::npos;
       pos = text.find(p.literal, pos + p.literal.size())) {
    out.emplace_back(pos, pos + p.literal.size());
  }
  return out;
}

std::string replace_all(const Pattern& p, std::string_view text, std::string_view content) {
  auto matches = find_matches(p, text);
  if (matches.empty()) return std::string(text);
  std::string out;
  out.reserve(text.size() + matches.size() * content.size());
  size_t prev = 0;
  for (auto [b, e] : matches) {
    out.append(text.substr(prev, b - prev));
    out.append(content);
    prev = e;
  }
  out.append(text.substr(prev));
  return out;
}

}  // namespace lowbit
