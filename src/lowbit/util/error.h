// Errors: every failure lowbit reports is a lowbit::Error whose message is one line,
// "<file or thing>: <problem>". The CLI prints it and exits with code 2.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace lowbit {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Throws Error("<where>: <formatted problem>").
template <typename... Args>
[[noreturn]] void fail(const std::string& where, fmt::format_string<Args...> fmt_str,
                       Args&&... args) {
  throw Error(where + ": " + fmt::format(fmt_str, std::forward<Args>(args)...));
}

}  // namespace lowbit
