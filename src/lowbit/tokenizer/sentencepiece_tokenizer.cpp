#include "lowbit/tokenizer/sentencepiece_tokenizer.h"

#include <exception>

#include "lowbit/io/limits.h"
#include "lowbit/tokenizer/spm_charsmap_check.h"
#include "lowbit/tokenizer/spm_processor.h"
#include "lowbit/util/error.h"
#include "lowbit/util/file.h"

namespace lowbit {

namespace {

constexpr char kSpaceSymbol[] = "\xe2\x96\x81";  // U+2581 "▁"
constexpr size_t kSpaceSymbolLen = 3;

bool starts_with_space_symbol(const std::string& s) {
  return s.compare(0, kSpaceSymbolLen, kSpaceSymbol) == 0;
}

void replace_space_symbols(std::string* s) {
  size_t out = 0;
  for (size_t i = 0; i < s->size();) {
    if (s->compare(i, kSpaceSymbolLen, kSpaceSymbol) == 0) {
      (*s)[out++] = ' ';
      i += kSpaceSymbolLen;
    } else {
      (*s)[out++] = (*s)[i++];
    }
  }
  s->resize(out);
}

// "<0xAB>" -> 0xAB; -1 when the piece is not of that form.
int byte_of_piece(const std::string& p) {
  if (p.size() != 6 || p.compare(0, 3, "<0x") != 0 || p[5] != '>') return -1;
  int v = 0;
  for (size_t i = 3; i < 5; ++i) {
    const char c = p[i];
    const int d = c >= '0' && c <= '9'   ? c - '0'
                  : c >= 'A' && c <= 'F' ? c - 'A' + 10
                  : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                         : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

}  // namespace

SentencePieceTokenizer::SentencePieceTokenizer() = default;
SentencePieceTokenizer::~SentencePieceTokenizer() = default;

std::shared_ptr<SentencePieceTokenizer> SentencePieceTokenizer::from_file(const std::string& path) {
  return from_serialized(read_file(path, kMaxTokenizerJsonBytes, "SentencePiece model"), path);
}

std::shared_ptr<SentencePieceTokenizer> SentencePieceTokenizer::from_serialized(
    const std::string& bytes, const std::string& name) {
  try {
    return build(bytes, name);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {  // e.g. the library's trie builder on a bad model
    fail(name, "not a valid SentencePiece model: {}", e.what());
  }
}

std::shared_ptr<SentencePieceTokenizer> SentencePieceTokenizer::build(const std::string& bytes,
                                                                      const std::string& name) {
  if (bytes.empty()) fail(name, "empty file, not a SentencePiece model");
  check_sentencepiece_charsmaps(bytes, name);  // the library walks these tables unchecked
  std::shared_ptr<SentencePieceTokenizer> t(new SentencePieceTokenizer());
  t->name_ = name;
  t->sp_ = open_spm_processor(bytes, name);
  const SpmProcessor& sp = *t->sp_;
  const int n = sp.piece_size();
  if (n <= 0) fail(name, "SentencePiece model without pieces");
  t->model_size_ = n;
  t->pieces_.reserve(n);
  t->kinds_.reserve(n);
  t->bytes_.reserve(n);
  for (int i = 0; i < n; ++i) {
    t->pieces_.push_back(sp.id_to_piece(i));
    Kind kind = Kind::kNormal;
    int byte = -1;
    if (sp.is_control(i)) {
      kind = Kind::kControl;
    } else if (sp.is_unknown(i)) {
      kind = Kind::kUnknown;
    } else if (sp.is_byte(i) && (byte = byte_of_piece(t->pieces_.back())) >= 0) {
      kind = Kind::kByte;
    }
    t->kinds_.push_back(kind);
    t->bytes_.push_back(static_cast<uint8_t>(byte < 0 ? 0 : byte));
  }
  auto checked = [n](int id) { return id >= 0 && id < n ? id : -1; };
  t->bos_id_ = checked(sp.bos_id());
  t->eos_id_ = checked(sp.eos_id());
  t->unk_id_ = checked(sp.unk_id());
  if (t->unk_id_ >= 0) t->unk_surface_ = sp.decode_ids({t->unk_id_});
  // How the library's Decode treats the first piece's "▁": decode one piece that starts with it.
  for (int i = 0; i < n; ++i) {
    if (t->kinds_[i] != Kind::kNormal || !starts_with_space_symbol(t->pieces_[i])) continue;
    t->strip_first_ws_ = sp.decode_ids({i}) != t->piece_text(i, false);
    break;
  }
  // remove_extra_whitespaces: text of spaces only encodes to nothing.
  std::vector<int> spaces;
  std::string ignored;
  if (sp.encode(" ", &spaces, &ignored) && spaces.empty()) t->strip_one_ws_only_ = false;
  return t;
}

bool SentencePieceTokenizer::is_special(int id) const {
  return kinds_[id] == Kind::kControl || kinds_[id] == Kind::kAppended;
}

std::string SentencePieceTokenizer::piece_text(int id, bool strip_first) const {
  std::string s = pieces_[id];
  if (strip_first && starts_with_space_symbol(s)) s.erase(0, kSpaceSymbolLen);
  replace_space_symbols(&s);
  return s;
}

int SentencePieceTokenizer::piece_to_id(const std::string& piece) const {
  auto it = appended_.find(piece);
  if (it != appended_.end()) return it->second;
  const int id = sp_->piece_to_id(piece);
  return id >= 0 && id < model_size_ && pieces_[id] == piece ? id : -1;
}

std::string SentencePieceTokenizer::id_to_piece(int id) const {
  return id >= 0 && id < vocab_size() ? pieces_[id] : std::string();
}

void SentencePieceTokenizer::set_prefix_pieces(const std::vector<std::string>& pieces) {
  std::vector<int> ids;
  for (const std::string& p : pieces) {
    const int id = piece_to_id(p);
    if (id < 0) fail(name_, "no piece {:?} in this SentencePiece model (for the prefix)", p);
    ids.push_back(id);
  }
  prefix_ = std::move(ids);
}

void SentencePieceTokenizer::append_special_pieces(const std::vector<std::string>& pieces) {
  for (const std::string& p : pieces) {
    if (p.empty()) fail(name_, "an appended special piece is empty");
  }
  for (const std::string& p : pieces) {
    const int id = vocab_size();
    pieces_.push_back(p);
    kinds_.push_back(Kind::kAppended);
    bytes_.push_back(0);
    appended_.emplace(p, id);
  }
}

std::vector<int> SentencePieceTokenizer::encode(const std::string& text, bool add_special) const {
  std::vector<int> ids;
  std::string error;
  if (!sp_->encode(text, &ids, &error))
    fail(name_, "SentencePiece cannot encode the text: {}", error);
  for (int id : ids) {
    if (id < 0 || id >= model_size_) fail(name_, "SentencePiece returned id {} out of range", id);
  }
  if (!add_special) return ids;
  std::vector<int> out;
  out.reserve(ids.size() + prefix_.size() + 2);
  if (add_bos_ && bos_id_ >= 0) out.push_back(bos_id_);
  out.insert(out.end(), prefix_.begin(), prefix_.end());
  out.insert(out.end(), ids.begin(), ids.end());
  if (add_eos_ && eos_id_ >= 0) out.push_back(eos_id_);
  return out;
}

std::string SentencePieceTokenizer::decode_token(int prev_id, int id) const {
  if (id < 0 || id >= vocab_size()) return "";
  switch (kinds_[id]) {
    case Kind::kControl:
    case Kind::kAppended:
      return "";
    case Kind::kUnknown:
      return unk_surface_;
    case Kind::kByte:
      return std::string(1, static_cast<char>(bytes_[id]));
    case Kind::kNormal:
      break;
  }
  const bool first = prev_id < 0 || (prev_id < vocab_size() && is_special(prev_id));
  return piece_text(id, strip_first_ws_ && first);
}

// The library's Decode (sentencepiece_processor.cc), piece by piece, bytes kept raw.
std::string SentencePieceTokenizer::decode(const std::vector<int>& ids, bool skip_special) const {
  std::string out;
  bool text_seen = false;    // the library's "decoded text is not empty" (special tokens aside)
  bool is_bos_ws = true;     // a leading "▁" may still be dropped
  bool bos_ws_seen = false;  // the previous piece had its "▁" dropped
  for (int id : ids) {
    if (id < 0 || id >= vocab_size()) continue;
    const Kind kind = kinds_[id];
    if (kind == Kind::kByte) {
      out += static_cast<char>(bytes_[id]);
      text_seen = true;
      continue;
    }
    if (bos_ws_seen || text_seen) is_bos_ws = false;
    bos_ws_seen = false;
    if (kind == Kind::kControl || kind == Kind::kAppended) {
      if (!skip_special) out += pieces_[id];
    } else if (kind == Kind::kUnknown) {
      out += unk_surface_;  // as the library, with or without the special pieces
      text_seen = text_seen || !unk_surface_.empty();
    } else {
      const bool strip = is_bos_ws && strip_first_ws_ && starts_with_space_symbol(pieces_[id]);
      const std::string s = piece_text(id, strip);
      bos_ws_seen = strip && strip_one_ws_only_;
      out += s;
      text_seen = text_seen || !s.empty();
    }
  }
  return out;
}

float SentencePieceTokenizer::score(int id) const {
  return id >= 0 && id < model_size_ ? sp_->score(id) : 0.0f;
}

int SentencePieceTokenizer::piece_type(int id) const {
  if (id < 0 || id >= model_size_) return 1;
  if (sp_->is_control(id)) return 3;
  if (sp_->is_unknown(id)) return 2;
  if (sp_->is_unused(id)) return 5;
  if (sp_->is_byte(id)) return 6;
  return 1;
}

}  // namespace lowbit
