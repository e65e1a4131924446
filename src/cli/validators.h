// Checks of numeric flags, run on the text before CLI11 converts it: a non-number, a non-finite
// number (nan, inf) or one outside the range is a one-line error that quotes what the user typed
// (never a 300-digit rendering of it).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>

namespace lowbit::cli {

// A finite real number in [lo, hi].
CLI::Validator real_in(double lo, double hi);
// An integer in [lo, hi].
CLI::Validator int_in(int64_t lo, int64_t hi);

}  // namespace lowbit::cli
