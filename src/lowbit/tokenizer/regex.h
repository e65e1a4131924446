// A compiled Unicode regular expression (PCRE2 with UTF + UCP, JIT when available), used by the
// Split / ByteLevel pre-tokenizers and the Replace normalizer and decoder.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lowbit {

class Regex {
 public:
  // Compiles `pattern`; throws Error("<where>: bad regex ...") when PCRE2 rejects it.
  Regex(const std::string& pattern, const std::string& where);
  // A regex matching `literal` exactly.
  static std::string escape(std::string_view literal);
  // All non-overlapping matches [begin, end) in a valid UTF-8 string, left to right (empty
  // matches allowed, as Oniguruma's find_iter gives them).
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace lowbit
