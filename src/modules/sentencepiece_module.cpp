// libsentencepiece behind lowbit's SpmProcessor interface: the whole content of the module
// lowbit_sentencepiece, which tokenizer/spm_processor.cpp opens at run time (that header says why
// the library is kept out of lowbit's own symbol scope). Every failure of the library, a status or
// an exception, comes back as one line of text.
#include <sentencepiece_processor.h>

#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "lowbit/tokenizer/spm_processor.h"

// Exported by libsentencepiece (util.cc) since 0.1.9x, though only newer versions declare it in
// sentencepiece_processor.h: its LOG(INFO/WARNING/ERROR) lines go to stderr, and lowbit reports
// every problem as one line of its own.
namespace sentencepiece::logging {
void SetMinLogLevel(int v);
}  // namespace sentencepiece::logging

namespace {

// The library's message on one line, without its "file(line) [condition]" form where it has one.
std::string status_text(const sentencepiece::util::Status& st) {
  std::string msg = st.message() ? st.message() : "";
  if (msg.find("ParseFromArray") != std::string::npos) return "not a protobuf ModelProto";
  if (msg.size() > 200) msg = msg.substr(0, 200) + "...";
  for (char& c : msg) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  while (!msg.empty() && msg.back() == ' ') msg.pop_back();
  return msg.empty() ? "unknown error" : msg;
}

class Processor final : public lowbit::SpmProcessor {
 public:
  sentencepiece::SentencePieceProcessor sp;

  int piece_size() const override { return sp.GetPieceSize(); }
  std::string id_to_piece(int id) const override { return sp.IdToPiece(id); }
  int piece_to_id(const std::string& piece) const override { return sp.PieceToId(piece); }
  bool is_control(int id) const override { return sp.IsControl(id); }
  bool is_unknown(int id) const override { return sp.IsUnknown(id); }
  bool is_unused(int id) const override { return sp.IsUnused(id); }
  bool is_byte(int id) const override { return sp.IsByte(id); }
  float score(int id) const override { return sp.GetScore(id); }
  int bos_id() const override { return sp.bos_id(); }
  int eos_id() const override { return sp.eos_id(); }
  int unk_id() const override { return sp.unk_id(); }
  std::string decode_ids(const std::vector<int>& ids) const override {
    try {
      return sp.DecodeIds(ids);
    } catch (const std::exception&) {
      return "";
    }
  }
  bool encode(const std::string& text, std::vector<int>* ids, std::string* error) const override {
    try {
      const sentencepiece::util::Status st = sp.Encode(text, ids);
      if (st.ok()) return true;
      *error = status_text(st);
    } catch (const std::exception& e) {
      *error = e.what();
    }
    return false;
  }
};

}  // namespace

extern "C" __attribute__((visibility("default"))) lowbit::SpmProcessor* lowbit_spm_open(
    const char* data, size_t size, std::string* error) {
  static std::once_flag quiet;
  std::call_once(quiet, [] { sentencepiece::logging::SetMinLogLevel(3); });  // LOG_FATAL only
  try {
    auto p = std::make_unique<Processor>();
    const sentencepiece::util::Status st = p->sp.LoadFromSerializedProto({data, size});
    if (!st.ok()) {
      *error = status_text(st);
      return nullptr;
    }
    return p.release();
  } catch (const std::exception& e) {  // e.g. the library's trie builder on a bad model
    *error = e.what();
    return nullptr;
  }
}
