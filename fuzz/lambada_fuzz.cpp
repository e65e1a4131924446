// libFuzzer target: arbitrary bytes as a LAMBADA jsonl file (parse_lambada). Only lowbit::Error
// may escape; every document read must split as Python's rsplit(" ", 1) does.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "lowbit/eval/lambada.h"
#include "lowbit/util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const lowbit::LambadaSet set = lowbit::parse_lambada("fuzz/lambada.jsonl", text);
    if (set.docs.empty() || set.n_skipped < 0) std::abort();
    for (const lowbit::LambadaDoc& d : set.docs) {
      if (d.target.empty() || d.target[0] != ' ') std::abort();
      if (d.target.find(' ', 1) != std::string::npos) std::abort();  // the last word only
    }
  } catch (const lowbit::Error&) {
    // expected for malformed input
  }
  return 0;
}
