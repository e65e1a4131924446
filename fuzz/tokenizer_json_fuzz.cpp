// libFuzzer target: arbitrary bytes as a tokenizer.json. Loading must either succeed or throw
// lowbit::Error; a loaded tokenizer must encode and decode a few strings without crashing.
#include <cstddef>
#include <cstdint>
#include <string>

#include "lowbit/tokenizer/tokenizer.h"
#include "lowbit/util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    auto tok = lowbit::load_tokenizer_from_json_string(text, "fuzz.json");
    for (const char* s : {"Hello world", " a  b\n\tc <s> </s> 123 \xe2\x96\x81x", "\xff\xc3"}) {
      std::vector<int> ids = tok->encode(s, true);
      std::string back = tok->decode(ids, false);
      int prev = -1;
      for (int id : ids) {
        back += tok->decode_token(prev, id);
        prev = id;
      }
    }
    tok->decode({-1, 0, 1, 1 << 30}, true);
  } catch (const lowbit::Error&) {
    // expected for malformed input
  }
  return 0;
}
