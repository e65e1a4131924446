#include "lowbit/tokenizer/added_vocab.h"

#include <algorithm>

#include "lowbit/tokenizer/json_util.h"
#include "lowbit/tokenizer/unicode.h"

namespace lowbit {

using namespace tokjson;

std::vector<AddedToken> parse_added_tokens(const json& j, const std::string& where) {
  std::vector<AddedToken> out;
  if (j.is_null()) return out;
  if (!j.is_array()) fail(where, "'added_tokens' is not a list");
  for (const json& t : j) {
    if (!t.is_object()) fail(where, "added token is not an object");
    AddedToken a;
    a.content = get_string(t, "content", where);
    long long id = get_int(t, "id", where, -1);
    if (id < 0 || id >= (1 << 24)) fail(where, "added token '{}' has a bad id", a.content);
    a.id = static_cast<int>(id);
    a.special = get_bool(t, "special", where, false);
    a.lstrip = get_bool(t, "lstrip", where, false);
    a.rstrip = get_bool(t, "rstrip", where, false);
    a.single_word = get_bool(t, "single_word", where, false);
    a.normalized = get_bool(t, "normalized", where, !a.special);
    out.push_back(std::move(a));
  }
  return out;
}

void AddedTokenMatcher::build(std::vector<AddedToken> tokens) {
  tokens_.clear();
  for (AddedToken& t : tokens) {
    if (!t.content.empty()) tokens_.push_back(std::move(t));
  }
  by_first_byte_.assign(256, {});
  for (size_t i = 0; i < tokens_.size(); ++i) {
    by_first_byte_[static_cast<unsigned char>(tokens_[i].content[0])].push_back(
        static_cast<int>(i));
  }
  for (auto& v : by_first_byte_) {
    std::stable_sort(v.begin(), v.end(), [&](int a, int b) {
      return tokens_[a].content.size() > tokens_[b].content.size();
    });
  }
}

namespace {

// The code point ending just before byte `end` (valid UTF-8).
uint32_t char_before(std::string_view s, size_t end, size_t* start) {
  size_t k = end - 1;
  while (k > 0 && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
  size_t n;
  *start = k;
  return utf8::decode(s, k, &n);
}

bool is_word_char(uint32_t cp) { return cp == '_' || utf8::is_alnum(cp); }

}  // namespace

std::vector<Segment> AddedTokenMatcher::split(std::string_view text) const {
  std::vector<Segment> out;
  if (text.empty()) return out;
  size_t start_offset = 0;
  for (size_t i = 0; i < text.size();) {
    int best = -1;
    if (!tokens_.empty()) {
      for (int k : by_first_byte_[static_cast<unsigned char>(text[i])]) {
        if (text.compare(i, tokens_[k].content.size(), tokens_[k].content) == 0) {
          best = k;
          break;
        }
      }
    }
    if (best < 0) {
      ++i;
      continue;
    }
    const AddedToken& t = tokens_[best];
    size_t b = i, e = i + t.content.size();
    i = e;
    if (t.single_word) {
      size_t dummy;
      bool word_before = b > 0 && is_word_char(char_before(text, b, &dummy));
      size_t n;
      bool word_after = e < text.size() && is_word_char(utf8::decode(text, e, &n));
      if (word_before || word_after) continue;
    }
    if (t.lstrip) {
      size_t nb = b;
      while (nb > 0) {
        size_t k;
        if (!utf8::is_whitespace(char_before(text, nb, &k))) break;
        nb = k;
      }
      b = std::max(nb, start_offset);
    }
    if (t.rstrip) {
      while (e < text.size()) {
        size_t n;
        if (!utf8::is_whitespace(utf8::decode(text, e, &n))) break;
        e += n;
      }
    }
    if (b < start_offset) b = start_offset;  // overlapping a previous rstrip: keep order sane
    if (start_offset < b) out.push_back({start_offset, b, -1});
    out.push_back({b, e, t.id});
    start_offset = e;
    i = std::max(i, e);
  }
  if (start_offset < text.size()) out.push_back({start_offset, text.size(), -1});
  return out;
}

}  // namespace lowbit
