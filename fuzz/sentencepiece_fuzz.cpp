// libFuzzer target: arbitrary bytes as a SentencePiece .model (SentencePieceTokenizer::
// from_serialized, which hands them to Debian's libsentencepiece; that library is not instrumented,
// so coverage guides through lowbit's side of the boundary only). Only lowbit::Error may escape. A
// model that loads must encode and decode a few strings, with and without ChatGLM's appended
// special pieces and prefix, every id it makes being inside its vocabulary (encode may refuse a
// text with lowbit::Error).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "lowbit/tokenizer/sentencepiece_tokenizer.h"
#include "lowbit/util/error.h"

namespace {

void exercise(const lowbit::SentencePieceTokenizer& tok) {
  const int n = tok.vocab_size();
  for (const char* s : {"Hello world", " a  b\n\tc <s> </s> 123 \xe2\x96\x81x", "\xff\xc3", ""}) {
    for (bool special : {true, false}) {
      std::vector<int> ids;
      try {
        ids = tok.encode(s, special);
      } catch (const lowbit::Error&) {
        continue;  // the library refused the text (one-line error): allowed
      }
      for (int id : ids) {
        if (id < 0 || id >= n) std::abort();
      }
      std::string back = tok.decode(ids, true) + tok.decode(ids, false);
      int prev = -1;
      for (int id : ids) {
        back += tok.decode_token(prev, id);
        prev = id;
      }
    }
  }
  tok.decode({-1, 0, 1, 2, n - 1, n, 1 << 30}, true);
  tok.decode({0, 1, 2, n - 1}, false);
  tok.id_to_piece(-1);
  tok.id_to_piece(n);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  std::shared_ptr<lowbit::SentencePieceTokenizer> tok;
  try {
    tok = lowbit::SentencePieceTokenizer::from_serialized(bytes, "fuzz/tokenizer.model");
  } catch (const lowbit::Error&) {
    return 0;  // expected for malformed input
  }
  if (tok->vocab_size() <= 0) std::abort();
  exercise(*tok);
  const int before = tok->vocab_size();
  tok->append_special_pieces({"[MASK]", "[gMASK]", "[sMASK]", "sop", "eop"});
  if (tok->vocab_size() < before) std::abort();
  try {
    tok->set_prefix_pieces({"[gMASK]", "sop"});
  } catch (const lowbit::Error&) {
    std::abort();  // both pieces exist now (appended, or the model's own)
  }
  exercise(*tok);
  return 0;
}
