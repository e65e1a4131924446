// libFuzzer target: arbitrary bytes as a llama2.c tokenizer.bin (Llama2cTokenizer::from_mapped
// over an in-memory file). Only lowbit::Error may escape. A file read whole (vocab_size -1) must
// read the same with its own token count and be refused with one token more or fewer; the
// tokenizer must encode and decode a few strings, every id it makes being inside its vocabulary.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "lowbit/tokenizer/llama2c_tokenizer.h"
#include "lowbit/util/error.h"
#include "lowbit/util/mapped_file.h"

namespace {

bool refused(const lowbit::MappedFile& file, int vocab_size) {
  try {
    lowbit::Llama2cTokenizer::from_mapped(file, vocab_size);
  } catch (const lowbit::Error&) {
    return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto file = lowbit::MappedFile::from_memory("fuzz/tokenizer.bin",
                                              std::vector<uint8_t>(data, data + size));
  std::shared_ptr<lowbit::Llama2cTokenizer> tok;
  try {
    tok = lowbit::Llama2cTokenizer::from_mapped(*file, -1);
  } catch (const lowbit::Error&) {
    return 0;  // expected for malformed input
  }
  const int n = tok->vocab_size();
  if (n < 3) std::abort();
  try {
    if (lowbit::Llama2cTokenizer::from_mapped(*file, n)->vocab_size() != n) std::abort();
  } catch (const lowbit::Error&) {
    std::abort();
  }
  if (!refused(*file, n - 1) || !refused(*file, n + 1)) std::abort();

  file.reset();  // the tokenizer must not point into the file
  for (const char* s : {"Hello world", " a  b\n\tc <s> </s> 123 \xe2\x96\x81x", "\xff\xc3", ""}) {
    for (bool special : {true, false}) {
      const std::vector<int> ids = tok->encode(s, special);
      for (int id : ids) {
        if (id < 0 || id >= n) std::abort();
      }
      std::string back = tok->decode(ids, true) + tok->decode(ids, false);
      int prev = -1;
      for (int id : ids) {
        back += tok->decode_token(prev, id);
        prev = id;
      }
    }
  }
  tok->decode({-1, 0, 1, 2, n - 1, n, 1 << 30}, true);
  tok->decode({0, 1, 2, n - 1}, false);
  return 0;
}
