#include "lowbit/tokenizer/llama2c_tokenizer.h"

#include <fmt/format.h>

#include <cstring>
#include <queue>

#include "lowbit/util/error.h"
#include "lowbit/util/mapped_file.h"

namespace lowbit {

std::shared_ptr<Llama2cTokenizer> Llama2cTokenizer::from_file(const std::string& path,
                                                              int vocab_size) {
  return from_mapped(*MappedFile::open(path), vocab_size);
}

std::shared_ptr<Llama2cTokenizer> Llama2cTokenizer::from_mapped(const MappedFile& file,
                                                                int vocab_size) {
  const std::string& path = file.path();
  const uint8_t* p = file.data();
  size_t size = file.size(), off = 0;
  auto read_i32 = [&](const char* what, size_t index) {
    if (size - off < 4) fail(path, "truncated llama2.c tokenizer: no {} for token {}", what, index);
    int32_t v;
    std::memcpy(&v, p + off, 4);
    off += 4;
    return v;
  };
  if (size < 4) fail(path, "truncated llama2.c tokenizer (no header)");
  int32_t max_len = read_i32("header", 0);
  if (max_len <= 0 || max_len > (1 << 16)) fail(path, "bad max_token_length {}", max_len);
  auto t = std::make_shared<Llama2cTokenizer>();
  for (size_t i = 0; vocab_size < 0 ? off < size : i < static_cast<size_t>(vocab_size); ++i) {
    int32_t score_bits = read_i32("score", i);
    float score;
    std::memcpy(&score, &score_bits, 4);
    int32_t len = read_i32("length", i);
    if (len < 0 || len > max_len) fail(path, "token {} has bad length {}", i, len);
    if (size - off < static_cast<size_t>(len)) fail(path, "truncated at token {}", i);
    t->pieces_.emplace_back(reinterpret_cast<const char*>(p + off), len);
    t->scores_.push_back(score);
    off += len;
  }
  if (t->pieces_.size() < 3) fail(path, "llama2.c tokenizer has only {} tokens", t->pieces_.size());
  if (off < size) {
    fail(path,
         "holds more than the model's {} tokens ({} bytes left after token {}): not this "
         "model's tokenizer",
         vocab_size, size - off, vocab_size - 1);
  }
  t->special_.assign(t->pieces_.size(), false);
  for (int i = 0; i <= 2; ++i) t->special_[static_cast<size_t>(i)] = true;
  t->index();
  // run.c: byte pieces at ids 3..258.
  t->byte_fallback_ =
      t->pieces_.size() >= 259 && t->pieces_[3] == "<0x00>" && t->pieces_[258] == "<0xFF>";
  for (int b = 0; b < 256; ++b) t->byte_ids_[static_cast<size_t>(b)] = b + 3;
  return t;
}

std::shared_ptr<Llama2cTokenizer> Llama2cTokenizer::from_vocab(ScoredVocab v,
                                                               const std::string& where) {
  const int n = static_cast<int>(v.pieces.size());
  if (n == 0) fail(where, "empty vocabulary");
  if (v.scores.size() != v.pieces.size() || v.special.size() != v.pieces.size()) {
    fail(where, "{} pieces but {} scores and {} types", n, v.scores.size(), v.special.size());
  }
  for (int id : {v.bos, v.eos, v.unk}) {
    if (id >= n) fail(where, "special token id {} outside the vocabulary of {}", id, n);
  }
  auto t = std::make_shared<Llama2cTokenizer>();
  t->pieces_ = std::move(v.pieces);
  t->scores_ = std::move(v.scores);
  t->special_ = std::move(v.special);
  t->bos_ = v.bos;
  t->eos_ = v.eos;
  t->unk_ = v.unk;
  t->add_bos_ = v.add_bos && v.bos >= 0;
  t->add_eos_ = v.add_eos && v.eos >= 0;
  t->space_prefix_ = v.space_prefix;
  t->index();
  t->byte_fallback_ = true;
  for (int b = 0; b < 256; ++b) {
    const int id = t->lookup(fmt::format("<0x{:02X}>", b));
    t->byte_ids_[static_cast<size_t>(b)] = id;
    if (id < 0) t->byte_fallback_ = false;
  }
  return t;
}

void Llama2cTokenizer::index() {
  ids_.clear();
  for (size_t i = 0; i < pieces_.size(); ++i) ids_.emplace(pieces_[i], static_cast<int>(i));
  byte_ids_.assign(256, -1);
}

int Llama2cTokenizer::lookup(const std::string& s) const {
  auto it = ids_.find(s);
  return it == ids_.end() ? -1 : it->second;
}

std::vector<int> Llama2cTokenizer::encode(const std::string& text, bool add_special) const {
  std::vector<int> toks;
  if (!text.empty() && space_prefix_) {
    int dummy = lookup(" ");
    if (dummy >= 0) toks.push_back(dummy);
  }
  // Code points (up to 4 bytes, as run.c groups them) -> ids, byte fallback or <unk>.
  bool last_unk = false;
  std::string buf;
  for (size_t i = 0; i < text.size(); ++i) {
    unsigned char c = text[i];
    if ((c & 0xC0) != 0x80) buf.clear();
    buf += static_cast<char>(c);
    bool more = i + 1 < text.size() && (static_cast<unsigned char>(text[i + 1]) & 0xC0) == 0x80;
    if (more && buf.size() < 4) continue;
    int id = lookup(buf);
    if (id >= 0) {
      toks.push_back(id);
      last_unk = false;
    } else if (byte_fallback_) {
      for (unsigned char b : buf) toks.push_back(byte_ids_[b]);
      last_unk = false;
    } else if (!last_unk && unk_ >= 0) {  // consecutive unknown characters fuse into one <unk>
      toks.push_back(unk_);
      last_unk = true;
    }
    buf.clear();
  }
  // Merge the highest-scoring pair first (leftmost on ties), with a heap over a linked list.
  const int n = static_cast<int>(toks.size());
  std::vector<int> next(n), prev(n);
  std::vector<bool> removed(n, false);
  for (int i = 0; i < n; ++i) {
    next[i] = i + 1 < n ? i + 1 : -1;
    prev[i] = i - 1;
  }
  struct Cand {
    float score;
    int pos, left, right, id;
    bool operator<(const Cand& o) const { return score != o.score ? score < o.score : pos > o.pos; }
  };
  std::priority_queue<Cand> queue;
  auto push = [&](int pos) {
    if (pos < 0 || next[pos] < 0) return;
    int r = next[pos];
    int id = lookup(pieces_[toks[pos]] + pieces_[toks[r]]);
    if (id >= 0) queue.push({scores_[id], pos, toks[pos], toks[r], id});
  };
  for (int i = 0; i + 1 < n; ++i) push(i);
  while (!queue.empty()) {
    Cand c = queue.top();
    queue.pop();
    if (removed[c.pos] || next[c.pos] < 0 || toks[c.pos] != c.left ||
        toks[next[c.pos]] != c.right) {
      continue;
    }
    int r = next[c.pos];
    toks[c.pos] = c.id;
    removed[r] = true;
    next[c.pos] = next[r];
    if (next[r] >= 0) prev[next[r]] = c.pos;
    push(prev[c.pos]);
    push(c.pos);
  }
  std::vector<int> out;
  if (add_special && add_bos_) out.push_back(bos_);
  for (int i = 0; i >= 0 && i < n; i = next[i]) out.push_back(toks[i]);
  if (add_special && add_eos_) out.push_back(eos_);
  return out;
}

std::string Llama2cTokenizer::decode_token(int prev_id, int id) const {
  if (id < 0 || id >= vocab_size()) return "";
  if (special_[static_cast<size_t>(id)]) return "";  // <unk>, <s>, </s>, ...
  const std::string& piece = pieces_[id];
  unsigned int byte = 0;
  if (piece.size() == 6 && std::sscanf(piece.c_str(), "<0x%02X>", &byte) == 1) {
    return std::string(1, static_cast<char>(byte));
  }
  if (prev_id == bos_ && space_prefix_ && !piece.empty() && piece[0] == ' ') return piece.substr(1);
  return piece;
}

std::string Llama2cTokenizer::decode(const std::vector<int>& ids, bool skip_special) const {
  std::string out;
  int prev = bos_;  // like the HF decoder: the first piece's leading space is stripped
  for (int id : ids) {
    if (!skip_special && id >= 0 && id < vocab_size() && special_[static_cast<size_t>(id)]) {
      out += pieces_[id];
    } else {
      out += decode_token(prev, id);
    }
    prev = id;
  }
  return out;
}

}  // namespace lowbit
