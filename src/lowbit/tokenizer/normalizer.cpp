#include "lowbit/tokenizer/normalizer.h"

#include "lowbit/tokenizer/json_util.h"
#include "lowbit/tokenizer/unicode.h"
#include "lowbit/tokenizer/unicode_norm.h"

namespace lowbit {

using namespace tokjson;

Normalizer parse_normalizer(const json& j, const std::string& where) {
  Normalizer n;
  if (j.is_null()) return n;
  std::string type = type_of(j, where);
  if (type == "Sequence") {
    for (const json& c : get_array(j, "normalizers", where)) {
      n.children.push_back(parse_normalizer(c, where));
    }
  } else if (type == "Prepend") {
    n.kind = Normalizer::Kind::kPrepend;
    n.text = get_string(j, "prepend", where);
  } else if (type == "Replace") {
    n.kind = Normalizer::Kind::kReplace;
    if (!find(j, "pattern")) fail(where, "Replace normalizer without 'pattern'");
    n.pattern = parse_pattern(j["pattern"], where);
    n.text = get_string(j, "content", where);
  } else if (type == "Lowercase") {
    n.kind = Normalizer::Kind::kLowercase;
  } else if (type == "Strip") {
    n.kind = Normalizer::Kind::kStrip;
    n.strip_left = get_bool(j, "strip_left", where, true);
    n.strip_right = get_bool(j, "strip_right", where, true);
  } else if (type == "NFC") {
    n.kind = Normalizer::Kind::kNfc;
  } else if (type == "NFD") {
    n.kind = Normalizer::Kind::kNfd;
  } else {
    fail(where, "unsupported normalizer {}", type);
  }
  return n;
}

namespace {

std::string strip(const std::string& s, bool left, bool right) {
  size_t b = 0, e = s.size();
  if (left) {
    while (b < e) {
      size_t n;
      if (!utf8::is_whitespace(utf8::decode(s, b, &n))) break;
      b += n;
    }
  }
  if (right) {
    while (e > b) {
      size_t k = e - 1;
      while (k > b && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
      size_t n;
      if (!utf8::is_whitespace(utf8::decode(s, k, &n))) break;
      e = k;
    }
  }
  return s.substr(b, e - b);
}

}  // namespace

std::string normalize(const Normalizer& n, std::string s) {
  switch (n.kind) {
    case Normalizer::Kind::kSequence:
      for (const Normalizer& c : n.children) s = normalize(c, std::move(s));
      return s;
    case Normalizer::Kind::kPrepend:
      return s.empty() ? s : n.text + s;
    case Normalizer::Kind::kReplace:
      return replace_all(n.pattern, s, n.text);
    case Normalizer::Kind::kLowercase:
      return utf8::lowercase(s);
    case Normalizer::Kind::kStrip:
      return strip(s, n.strip_left, n.strip_right);
    case Normalizer::Kind::kNfc:
      return utf8::nfc(s);
    case Normalizer::Kind::kNfd:
      return utf8::nfd(s);
  }
  return s;
}

}  // namespace lowbit
