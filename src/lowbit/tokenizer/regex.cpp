#define PCRE2_CODE_UNIT_WIDTH 8
#include "lowbit/tokenizer/regex.h"

#include <pcre2.h>

#include "lowbit/tokenizer/unicode.h"
#include "lowbit/util/error.h"

namespace lowbit {

struct Regex::Impl {
  pcre2_code* code = nullptr;
  ~Impl() {
    if (code) pcre2_code_free(code);
  }
};

Regex::Regex(const std::string& pattern, const std::string& where)
    : impl_(std::make_shared<Impl>()) {
  int err = 0;
  PCRE2_SIZE off = 0;
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                              PCRE2_UTF | PCRE2_UCP, &err, &off, nullptr);
  if (!impl_->code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    fail(where, "bad regex '{}' at offset {}: {}", pattern, off, reinterpret_cast<char*>(msg));
  }
  pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE);  // best effort: falls back to interpreter
}

std::string Regex::escape(std::string_view literal) {
  std::string out = "\\Q";
  for (size_t i = 0; i < literal.size(); ++i) {
    if (literal.compare(i, 2, "\\E") == 0) {
      out += "\\E\\\\E\\Q";
      ++i;
    } else {
      out += literal[i];
    }
  }
  return out + "\\E";
}

std::vector<std::pair<size_t, size_t>> Regex::find_all(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> out;
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(impl_->code, nullptr);
  if (!md) throw Error("regex: out of memory");
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;
  size_t last_end = static_cast<size_t>(-1);
  while (start <= text.size()) {
    int rc = pcre2_match(impl_->code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc < 0) break;  // PCRE2_ERROR_NOMATCH, or a resource limit: stop matching
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    size_t b = ov[0], e = ov[1];
    if (e < b) break;  // \K tricks: ignore
    if (b == e) {
      // Empty match: keep it unless it directly follows the previous match; step one char.
      if (b != last_end) out.emplace_back(b, e);
      if (b >= text.size()) break;
      start = b + utf8::char_len(static_cast<unsigned char>(text[b]));
    } else {
      out.emplace_back(b, e);
      start = e;
    }
    last_end = e;
  }
  pcre2_match_data_free(md);
  return out;
}

}  // namespace lowbit
