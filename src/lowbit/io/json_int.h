// Reading an int from untrusted JSON. nlohmann's get<int>() casts a floating-point value
// (1e300, or an integer literal too long for int64 that parses as a double) with undefined
// behaviour; this checks the type and the range first.
#pragma once

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "lowbit/util/error.h"

namespace lowbit {

// Throws Error("<where>: <what> must be an integer" / "... is out of range").
inline int json_to_int(const std::string& where, const nlohmann::json& v, const std::string& what) {
  if (!v.is_number_integer()) fail(where, "{} must be an integer", what);
  if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(std::numeric_limits<int>::max())) {
    fail(where, "{} is out of range", what);
  }
  const int64_t x = v.get<int64_t>();
  if (x < std::numeric_limits<int>::min() || x > std::numeric_limits<int>::max()) {
    fail(where, "{} = {} is out of range", what, x);
  }
  return static_cast<int>(x);
}

}  // namespace lowbit
