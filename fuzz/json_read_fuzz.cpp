// libFuzzer target: arbitrary bytes through the bounded JSON reader every loader uses
// (check_json_depth, parse_json<json> and <ordered_json>). Only lowbit::Error may escape. Checked
// against nlohmann's own SAX parser, which tracks the real nesting depth without building a tree:
// valid JSON within the depth limit must parse, anything deeper must be refused before parsing,
// and what parse_json accepts must be valid JSON (without the NUL byte nlohmann stops at).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "lowbit/io/json_read.h"
#include "lowbit/util/error.h"

namespace {

// SAX handler that only measures the deepest nesting.
struct DepthMeter {
  using json = nlohmann::json;
  int depth = 0, max_depth = 0;
  bool null() { return true; }
  bool boolean(bool) { return true; }
  bool number_integer(json::number_integer_t) { return true; }
  bool number_unsigned(json::number_unsigned_t) { return true; }
  bool number_float(json::number_float_t, const std::string&) { return true; }
  bool string(std::string&) { return true; }
  bool binary(json::binary_t&) { return true; }
  bool start_object(std::size_t) { return open(); }
  bool start_array(std::size_t) { return open(); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }
  bool key(std::string&) { return true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) {
    return false;
  }
  bool open() {
    max_depth = std::max(max_depth, ++depth);
    return true;
  }
  bool close() {
    --depth;
    return true;
  }
};

template <typename Json>
bool parses(std::string_view text, int max_depth) {
  try {
    lowbit::parse_json<Json>("fuzz.json", text, max_depth);
  } catch (const lowbit::Error&) {
    return false;
  }
  return true;
}

bool depth_ok(std::string_view text, int max_depth) {
  try {
    lowbit::check_json_depth("fuzz.json", text, max_depth);
  } catch (const lowbit::Error&) {
    return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  DepthMeter meter;
  // nlohmann stops at a NUL byte as if the input ended there; JSON text never holds one.
  const bool valid = nlohmann::json::sax_parse(text.begin(), text.end(), &meter) &&
                     text.find('\0') == std::string_view::npos;
  for (int limit : {lowbit::kMaxJsonDepth, 3, 0}) {
    const bool ok = parses<nlohmann::json>(text, limit);
    if (ok != parses<nlohmann::ordered_json>(text, limit)) std::abort();
    if (ok && !valid) std::abort();                               // accepted bad JSON
    if (valid && (meter.max_depth <= limit) != ok) std::abort();  // depth misjudged
    if (valid && depth_ok(text, limit) != (meter.max_depth <= limit)) std::abort();
  }
  return 0;
}
