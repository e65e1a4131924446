#include "lowbit/tokenizer/decoder.h"

#include "lowbit/tokenizer/json_util.h"
#include "lowbit/tokenizer/unicode.h"

namespace lowbit {

using namespace tokjson;

Decoder parse_decoder(const json& j, const std::string& where, bool* present) {
  Decoder d;
  if (present) *present = !j.is_null();
  if (j.is_null()) return d;
  std::string type = type_of(j, where);
  if (type == "Sequence") {
    for (const json& c : get_array(j, "decoders", where)) {
      d.children.push_back(parse_decoder(c, where, nullptr));
    }
  } else if (type == "ByteLevel") {
    d.kind = Decoder::Kind::kByteLevel;
  } else if (type == "Metaspace") {
    d.kind = Decoder::Kind::kMetaspace;
    d.text = get_string(j, "replacement", where, "\xE2\x96\x81");
    if (const json* s = find(j, "prepend_scheme")) {
      d.prepend = !(s->is_string() && s->get<std::string>() == "never");
    } else {
      d.prepend = get_bool(j, "add_prefix_space", where, true);
    }
  } else if (type == "Replace") {
    d.kind = Decoder::Kind::kReplace;
    if (!find(j, "pattern")) fail(where, "Replace decoder without 'pattern'");
    d.pattern = parse_pattern(j["pattern"], where);
    d.text = get_string(j, "content", where);
  } else if (type == "ByteFallback") {
    d.kind = Decoder::Kind::kByteFallback;
  } else if (type == "Fuse") {
    d.kind = Decoder::Kind::kFuse;
  } else if (type == "Strip") {
    d.kind = Decoder::Kind::kStrip;
    d.text = get_string(j, "content", where, " ");
    d.start = static_cast<int>(get_int(j, "start", where, 0));
    d.stop = static_cast<int>(get_int(j, "stop", where, 0));
  } else if (type == "BPEDecoder") {
    d.kind = Decoder::Kind::kBpe;
    d.text = get_string(j, "suffix", where, "</w>");
  } else {
    fail(where, "unsupported decoder {}", type);
  }
  return d;
}

namespace {

std::string byte_level(const std::string& tok) {
  std::string out;
  for (size_t i = 0; i < tok.size();) {
    size_t n;
    int b = utf8::char_to_byte(utf8::decode(tok, i, &n));
    if (b < 0) return tok;  // not a byte-level token: raw bytes, as Hugging Face does
    out += static_cast<char>(b);
    i += n;
  }
  return out;
}

int byte_token(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  int hi = hex(t[3]), lo = hex(t[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

std::string strip(const std::string& t, const std::string& c, int start, int stop) {
  if (c.empty()) return t;
  size_t b = 0, e = t.size();
  for (int k = 0; k < start && t.compare(b, c.size(), c) == 0 && b + c.size() <= e; ++k) {
    b += c.size();
  }
  for (int k = 0; k < stop && e >= b + c.size() && t.compare(e - c.size(), c.size(), c) == 0; ++k) {
    e -= c.size();
  }
  return t.substr(b, e - b);
}

}  // namespace

std::string decode_tokens(const Decoder& d, std::vector<std::string> tokens, bool at_start);

namespace {

std::vector<std::string> apply(const Decoder& d, std::vector<std::string> toks, bool at_start) {
  switch (d.kind) {
    case Decoder::Kind::kSequence:
      for (const Decoder& c : d.children) toks = apply(c, std::move(toks), at_start);
      return toks;
    case Decoder::Kind::kByteLevel:
      for (std::string& t : toks) t = byte_level(t);
      return toks;
    case Decoder::Kind::kMetaspace: {
      Pattern p;
      p.literal = d.text;
      for (size_t i = 0; i < toks.size(); ++i) {
        toks[i] = replace_all(p, toks[i], " ");
        if (i == 0 && at_start && d.prepend && !toks[i].empty() && toks[i][0] == ' ') {
          toks[i].erase(0, 1);
        }
      }
      return toks;
    }
    case Decoder::Kind::kReplace:
      for (std::string& t : toks) t = replace_all(d.pattern, t, d.text);
      return toks;
    case Decoder::Kind::kByteFallback: {
      std::vector<std::string> out;
      std::string bytes;
      bool in_bytes = false;
      for (std::string& t : toks) {
        int b = byte_token(t);
        if (b >= 0) {
          bytes += static_cast<char>(b);
          in_bytes = true;
          continue;
        }
        if (in_bytes) out.push_back(std::move(bytes));
        bytes.clear();
        in_bytes = false;
        out.push_back(std::move(t));
      }
      if (in_bytes) out.push_back(std::move(bytes));
      return out;
    }
    case Decoder::Kind::kFuse: {
      std::string all;
      for (const std::string& t : toks) all += t;
      return {all};
    }
    case Decoder::Kind::kStrip:
      if (!at_start) return toks;
      for (std::string& t : toks) t = strip(t, d.text, d.start, d.stop);
      return toks;
    case Decoder::Kind::kBpe:
      for (size_t i = 0; i < toks.size(); ++i) {
        Pattern p;
        p.literal = d.text;
        toks[i] = replace_all(p, toks[i], i + 1 == toks.size() ? "" : " ");
      }
      return toks;
  }
  return toks;
}

}  // namespace

std::string decode_tokens(const Decoder& d, std::vector<std::string> tokens, bool at_start) {
  std::string out;
  for (const std::string& t : apply(d, std::move(tokens), at_start)) out += t;
  return out;
}

}  // namespace lowbit
