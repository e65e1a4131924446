// The calls lowbit makes to libsentencepiece, behind an interface: the library itself lives in a
// module of its own (src/modules/sentencepiece_module.cpp, built as lowbit_sentencepiece) that is
// opened on first use. Debian's libsentencepiece.so embeds and exports its own protobuf-lite 3.14,
// and libonnx needs libprotobuf 3.21: in one symbol scope each calls into the other's copy and the
// process aborts. The module is opened with RTLD_DEEPBIND, so it and libsentencepiece find their
// own protobuf first (CMakeLists.txt, where the module is built, says the same).
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace lowbit {

class SpmProcessor {
 public:
  virtual ~SpmProcessor() = default;
  virtual int piece_size() const = 0;
  virtual std::string id_to_piece(int id) const = 0;
  virtual int piece_to_id(const std::string& piece) const = 0;
  virtual bool is_control(int id) const = 0;
  virtual bool is_unknown(int id) const = 0;
  virtual bool is_unused(int id) const = 0;
  virtual bool is_byte(int id) const = 0;
  virtual float score(int id) const = 0;
  virtual int bos_id() const = 0;
  virtual int eos_id() const = 0;
  virtual int unk_id() const = 0;
  // The library's DecodeIds; "" when it fails.
  virtual std::string decode_ids(const std::vector<int>& ids) const = 0;
  // The library's Encode; false with *error set (one line) when it fails.
  virtual bool encode(const std::string& text, std::vector<int>* ids, std::string* error) const = 0;
};

// Parses a serialized SentencePiece ModelProto with libsentencepiece. Throws Error("<name>: ...")
// when the bytes are not a model the library accepts, or when the module cannot be opened.
std::unique_ptr<SpmProcessor> open_spm_processor(const std::string& bytes, const std::string& name);

// The module's factory, as the module exports it: a new processor, or nullptr with *error set.
using SpmOpenFn = SpmProcessor* (*)(const char* data, size_t size, std::string* error);
inline constexpr char kSpmOpenSymbol[] = "lowbit_spm_open";

}  // namespace lowbit
