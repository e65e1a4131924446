#define PCRE2_CODE_UNIT_WIDTH 8
#include "lowbit/tokenizer/regex.h"

#include <pcre2.h>

#include "lowbit/tokenizer/unicode.h"
#include "lowbit/util/error.h"

namespace lowbit {

struct Regex::Impl {
  pcre2_code* code = nullptr;
  std::string pattern, where;
  ~Impl() {
    if (code) pcre2_code_free(code);
  }
};

namespace {

// The JIT's default stack (32 KiB) is too small for some patterns on long runs of text; the
// retry gets this much before the match is given up as an error.
constexpr size_t kBigJitStack = size_t{16} << 20;

std::string short_pattern(const std::string& p) {
  return p.size() <= 60 ? p : p.substr(0, 57) + "...";
}

// One match attempt; a bigger JIT stack when the default one runs out.
int match_at(const pcre2_code* code, PCRE2_SPTR subject, size_t len, size_t start,
             pcre2_match_data* md) {
  int rc = pcre2_match(code, subject, len, start, PCRE2_NO_UTF_CHECK, md, nullptr);
  if (rc != PCRE2_ERROR_JIT_STACKLIMIT) return rc;
  pcre2_jit_stack* stack = pcre2_jit_stack_create(32 << 10, kBigJitStack, nullptr);
  pcre2_match_context* ctx = pcre2_match_context_create(nullptr);
  if (stack == nullptr || ctx == nullptr) {
    if (stack) pcre2_jit_stack_free(stack);
    if (ctx) pcre2_match_context_free(ctx);
    return rc;
  }
  pcre2_jit_stack_assign(ctx, nullptr, stack);
  rc = pcre2_match(code, subject, len, start, PCRE2_NO_UTF_CHECK, md, ctx);
  pcre2_match_context_free(ctx);
  pcre2_jit_stack_free(stack);
  return rc;
}

}  // namespace

Regex::Regex(const std::string& pattern, const std::string& where)
    : impl_(std::make_shared<Impl>()) {
  impl_->pattern = pattern;
  impl_->where = where;
  int err = 0;
  PCRE2_SIZE off = 0;
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                              PCRE2_UTF | PCRE2_UCP, &err, &off, nullptr);
  if (!impl_->code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    fail(where, "bad regex '{}' at offset {}: {}", short_pattern(pattern), off,
         reinterpret_cast<char*>(msg));
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
    const int rc = match_at(impl_->code, subject, text.size(), start, md);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      // A resource limit (match steps, depth, heap, JIT stack): the text would be split
      // differently from what the pattern says, so this is an error, not a shorter result.
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      pcre2_match_data_free(md);
      fail(impl_->where, "regex '{}' gave up at byte {} of a {}-byte text ({}): cannot split it",
           short_pattern(impl_->pattern), start, text.size(), reinterpret_cast<char*>(msg));
    }
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
