#include "lowbit/tokenizer/pre_tokenizer.h"

#include <algorithm>
#include <mutex>

#include "lowbit/tokenizer/json_util.h"
#include "lowbit/tokenizer/unicode.h"

namespace lowbit {

using namespace tokjson;

const char* const kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

namespace {

// Regexes shared by all tokenizers (compiled once).
const Pattern& shared_regex(const char* pattern) {
  struct Entry {
    const char* key;
    Pattern p;
  };
  static std::vector<Entry>* cache = new std::vector<Entry>();
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  for (const Entry& e : *cache) {
    if (e.key == pattern) return e.p;
  }
  Pattern p;
  p.regex = std::make_shared<Regex>(pattern, "built-in regex");
  cache->push_back({pattern, p});
  return cache->back().p;
}

const char* const kDigitsSingle = R"(\p{N})";
const char* const kDigitsRun = R"(\p{N}+)";
// Rust's char::is_ascii_punctuation || Unicode punctuation.
const char* const kPunct = R"([\p{P}!-/:-@\[-`{-~])";
const char* const kWordOrSymbols = R"(\w+|[^\w\s]+)";
const char* const kWhitespaceRun =
    R"([\t-\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}]+)";

SplitBehavior parse_behavior(const json& j, const std::string& where) {
  std::string b = get_string(j, "behavior", where, "Isolated");
  if (b == "Removed") return SplitBehavior::kRemoved;
  if (b == "Isolated") return SplitBehavior::kIsolated;
  if (b == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (b == "Contiguous") return SplitBehavior::kContiguous;
  fail(where, "unknown split behavior '{}'", b);
}

PreTokenizer make_split(const Pattern& pattern, SplitBehavior behavior, bool invert) {
  PreTokenizer p;
  p.kind = PreTokenizer::Kind::kSplit;
  p.pattern = pattern;
  p.behavior = behavior;
  p.invert = invert;
  return p;
}

}  // namespace

PreTokenizer parse_pre_tokenizer(const json& j, const std::string& where) {
  PreTokenizer p;
  if (j.is_null()) return p;
  std::string type = type_of(j, where);
  if (type == "Sequence") {
    for (const json& c : get_array(j, "pretokenizers", where)) {
      p.children.push_back(parse_pre_tokenizer(c, where));
    }
  } else if (type == "ByteLevel") {
    p.kind = PreTokenizer::Kind::kByteLevel;
    p.add_prefix_space = get_bool(j, "add_prefix_space", where, true);
    p.use_regex = get_bool(j, "use_regex", where, true);
    p.pattern = shared_regex(kGpt2Regex);
  } else if (type == "Metaspace") {
    p.kind = PreTokenizer::Kind::kMetaspace;
    p.replacement = get_string(j, "replacement", where, "\xE2\x96\x81");
    if (p.replacement.empty() || utf8::char_len(p.replacement[0]) != p.replacement.size()) {
      fail(where, "Metaspace replacement must be one character");
    }
    p.split = get_bool(j, "split", where, true);
    if (const json* s = find(j, "prepend_scheme")) {
      std::string scheme = s->is_string() ? s->get<std::string>() : "";
      if (scheme == "always") {
        p.prepend = PreTokenizer::Prepend::kAlways;
      } else if (scheme == "first") {
        p.prepend = PreTokenizer::Prepend::kFirst;
      } else if (scheme == "never") {
        p.prepend = PreTokenizer::Prepend::kNever;
      } else {
        fail(where, "unknown Metaspace prepend_scheme '{}'", scheme);
      }
    } else {
      bool add = get_bool(j, "add_prefix_space", where, true);
      p.prepend = add ? PreTokenizer::Prepend::kAlways : PreTokenizer::Prepend::kNever;
    }
    p.pattern.literal = p.replacement;
  } else if (type == "Split") {
    if (!find(j, "pattern")) fail(where, "Split pre-tokenizer without 'pattern'");
    p = make_split(parse_pattern(j["pattern"], where), parse_behavior(j, where),
                   get_bool(j, "invert", where, false));
  } else if (type == "Digits") {
    bool single = get_bool(j, "individual_digits", where, false);
    p = make_split(shared_regex(single ? kDigitsSingle : kDigitsRun), SplitBehavior::kIsolated,
                   false);
  } else if (type == "Punctuation") {
    p = make_split(shared_regex(kPunct), parse_behavior(j, where), false);
  } else if (type == "Whitespace") {
    p = make_split(shared_regex(kWordOrSymbols), SplitBehavior::kRemoved, true);
  } else if (type == "WhitespaceSplit") {
    p = make_split(shared_regex(kWhitespaceRun), SplitBehavior::kRemoved, false);
  } else {
    fail(where, "unsupported pre_tokenizer {}", type);
  }
  return p;
}

void split_piece(const Piece& p, const Pattern& pattern, SplitBehavior behavior, bool invert,
                 std::vector<Piece>& out) {
  const std::string& s = p.text;
  struct Span {
    size_t b, e;
    bool match;
  };
  std::vector<Span> spans;
  if (s.empty()) {
    spans.push_back({0, 0, false});
  } else {
    size_t prev = 0;
    for (auto [b, e] : find_matches(pattern, s)) {
      if (prev != b) spans.push_back({prev, b, false});
      spans.push_back({b, e, true});
      prev = e;
    }
    if (prev != s.size()) spans.push_back({prev, s.size(), false});
  }
  if (invert) {
    for (Span& sp : spans) sp.match = !sp.match;
  }
  // (range, remove)
  std::vector<Span> parts;
  bool prev_match = false;
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (Span sp : spans) parts.push_back({sp.b, sp.e, false});
      break;
    case SplitBehavior::kRemoved:
      parts = spans;
      break;
    case SplitBehavior::kContiguous:
      for (Span sp : spans) {
        if (sp.match == prev_match && !parts.empty()) {
          parts.back().e = sp.e;
        } else {
          parts.push_back({sp.b, sp.e, false});
        }
        prev_match = sp.match;
      }
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (Span sp : spans) {
        if (sp.match && !prev_match && !parts.empty()) {
          parts.back().e = sp.e;
        } else {
          parts.push_back({sp.b, sp.e, false});
        }
        prev_match = sp.match;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (size_t k = spans.size(); k-- > 0;) {
        Span sp = spans[k];
        if (sp.match && !prev_match && !parts.empty()) {
          parts.back().b = sp.b;
        } else {
          parts.push_back({sp.b, sp.e, false});
        }
        prev_match = sp.match;
      }
      std::reverse(parts.begin(), parts.end());
      break;
  }
  for (const Span& sp : parts) {
    if (sp.match || sp.e == sp.b) continue;  // removed, or empty
    out.push_back({s.substr(sp.b, sp.e - sp.b), p.at_start && sp.b == 0});
  }
}

namespace {

void byte_level(const PreTokenizer& p, std::vector<Piece>& pieces) {
  std::vector<Piece> out;
  for (Piece& piece : pieces) {
    if (p.add_prefix_space && piece.text.rfind(' ', 0) != 0) piece.text = " " + piece.text;
    if (p.use_regex) {
      split_piece(piece, p.pattern, SplitBehavior::kIsolated, false, out);
    } else if (!piece.text.empty()) {
      out.push_back(std::move(piece));
    }
  }
  for (Piece& piece : out) {
    std::string mapped;
    mapped.reserve(piece.text.size() * 2);
    for (unsigned char c : piece.text) utf8::append(mapped, utf8::byte_to_char(c));
    piece.text = std::move(mapped);
  }
  pieces = std::move(out);
}

void metaspace(const PreTokenizer& p, std::vector<Piece>& pieces) {
  Pattern space;
  space.literal = " ";
  std::vector<Piece> out;
  for (Piece& piece : pieces) {
    piece.text = replace_all(space, piece.text, p.replacement);
    bool starts = piece.text.rfind(p.replacement, 0) == 0;
    if (!starts && (p.prepend == PreTokenizer::Prepend::kAlways ||
                    (p.prepend == PreTokenizer::Prepend::kFirst && piece.at_start))) {
      piece.text = p.replacement + piece.text;
    }
    if (p.split) {
      split_piece(piece, p.pattern, SplitBehavior::kMergedWithNext, false, out);
    } else if (!piece.text.empty()) {
      out.push_back(std::move(piece));
    }
  }
  pieces = std::move(out);
}

}  // namespace

void pre_tokenize(const PreTokenizer& p, std::vector<Piece>& pieces) {
  switch (p.kind) {
    case PreTokenizer::Kind::kSequence:
      for (const PreTokenizer& c : p.children) pre_tokenize(c, pieces);
      return;
    case PreTokenizer::Kind::kByteLevel:
      byte_level(p, pieces);
      return;
    case PreTokenizer::Kind::kMetaspace:
      metaspace(p, pieces);
      return;
    case PreTokenizer::Kind::kSplit: {
      std::vector<Piece> out;
      for (const Piece& piece : pieces) split_piece(piece, p.pattern, p.behavior, p.invert, out);
      pieces = std::move(out);
      return;
    }
  }
}

}  // namespace lowbit
