#include "lowbit/io/json_read.h"

#include "lowbit/util/error.h"
#include "lowbit/util/file.h"
#include "lowbit/util/memory.h"

namespace lowbit {

namespace {
// A parsed nlohmann tree takes up to ~10 bytes of memory per byte of text (small objects).
constexpr uint64_t kTreeBytesPerTextByte = 10;
}  // namespace

void check_json_depth(const std::string& where, std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) fail(where, "JSON nested deeper than {} levels", max_depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
}

std::string json_error_text(const nlohmann::json::exception& e) {
  std::string s = e.what();
  if (s.rfind("[json.exception.", 0) == 0) {
    const size_t close = s.find("] ");
    if (close != std::string::npos) s = s.substr(close + 2);
  }
  return s;
}

template <typename Json>
Json parse_json(const std::string& where, std::string_view text, int max_depth) {
  check_json_depth(where, text, max_depth);
  // nlohmann's lexer takes a NUL byte for the end of the input and would accept "{...}\0<junk>"
  // (a file padded or overwritten with zeros); JSON text never holds one, not even in a string.
  const size_t nul = text.find('\0');
  if (nul != std::string_view::npos) fail(where, "not valid JSON (a NUL byte at offset {})", nul);
  Json j = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) fail(where, "not valid JSON (truncated or corrupt?)");
  return j;
}

template <typename Json>
Json read_json_file(const std::string& path, uint64_t max_bytes, const char* what, int max_depth) {
  const std::string text = read_file(path, max_bytes, what);
  require_memory(path, fmt::format("parsing this {}", what), text.size() * kTreeBytesPerTextByte);
  return parse_json<Json>(path, text, max_depth);
}

template nlohmann::json parse_json<nlohmann::json>(const std::string&, std::string_view, int);
template nlohmann::ordered_json parse_json<nlohmann::ordered_json>(const std::string&,
                                                                   std::string_view, int);
template nlohmann::json read_json_file<nlohmann::json>(const std::string&, uint64_t, const char*,
                                                       int);
template nlohmann::ordered_json read_json_file<nlohmann::ordered_json>(const std::string&, uint64_t,
                                                                       const char*, int);

}  // namespace lowbit
