#include "cli/validators.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <string>

namespace lowbit::cli {

namespace {

// What the user typed, shortened when very long.
std::string as_typed(const std::string& s) {
  return s.size() <= 40 ? "'" + s + "'" : "'" + s.substr(0, 37) + "...'";
}

}  // namespace

CLI::Validator real_in(double lo, double hi) {
  return CLI::Validator(
      [lo, hi](std::string& s) -> std::string {
        const char* b = s.c_str();
        char* end = nullptr;
        const double v = std::strtod(b, &end);
        if (s.empty() || end != b + s.size()) return fmt::format("{} is not a number", as_typed(s));
        if (!std::isfinite(v) || v < lo || v > hi) {
          return fmt::format("{} is outside [{}, {}]", as_typed(s), lo, hi);
        }
        return "";
      },
      fmt::format("in [{}, {}]", lo, hi));
}

CLI::Validator int_in(int64_t lo, int64_t hi) {
  return CLI::Validator(
      [lo, hi](std::string& s) -> std::string {
        int64_t v = 0;
        const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec == std::errc::result_out_of_range) {
          return fmt::format("{} is outside [{}, {}]", as_typed(s), lo, hi);
        }
        if (ec != std::errc() || p != s.data() + s.size()) {
          return fmt::format("{} is not an integer", as_typed(s));
        }
        if (v < lo || v > hi) return fmt::format("{} is outside [{}, {}]", as_typed(s), lo, hi);
        return "";
      },
      fmt::format("in [{}, {}]", lo, hi));
}

}  // namespace lowbit::cli
