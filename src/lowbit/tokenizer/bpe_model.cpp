#include "lowbit/tokenizer/bpe_model.h"

#include <fmt/format.h>

#include <queue>

#include "lowbit/tokenizer/json_util.h"
#include "lowbit/tokenizer/unicode.h"

namespace lowbit {

using namespace tokjson;

namespace {

constexpr long long kMaxId = 1 << 24;       // refuse absurd ids (a 16M vocab is plenty)
constexpr size_t kCacheMaxWordBytes = 256;  // like Hugging Face's MAX_LENGTH
constexpr size_t kCacheCapacity = 200000;

int vocab_id(const BpeModel& m, const std::string& tok, const std::string& where, size_t merge) {
  auto it = m.vocab.find(tok);
  if (it == m.vocab.end()) fail(where, "merge {} refers to unknown token '{}'", merge, tok);
  return it->second;
}

void parse_merges(const json& merges, const std::string& where, BpeModel& m) {
  m.merges.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const json& e = merges[i];
    std::string a, b;
    if (e.is_string()) {
      const std::string& s = e.get_ref<const std::string&>();
      size_t sp = s.find(' ');
      if (sp == std::string::npos) fail(where, "merge {} '{}' is not two tokens", i, s);
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      a = e[0].get<std::string>();
      b = e[1].get<std::string>();
    } else {
      fail(where, "merge {} is neither \"a b\" nor [\"a\", \"b\"]", i);
    }
    int ia = vocab_id(m, a, where, i), ib = vocab_id(m, b, where, i);
    const std::string& pre = m.continuing_subword_prefix;
    std::string merged = a + (!pre.empty() && b.rfind(pre, 0) == 0 ? b.substr(pre.size()) : b);
    int id = vocab_id(m, merged, where, i);
    m.merges.insert(ia, ib, static_cast<int>(i), id);
    m.in_merge[ia] = true;
    m.in_merge[ib] = true;
  }
}

}  // namespace

void MergeTable::reserve(size_t n) {
  size_t cap = 16;
  while (cap < n * 2 + 16) cap *= 2;
  slots_.assign(cap, Entry{});
  size_ = 0;
}

void MergeTable::insert(int a, int b, int rank, int id) {
  if ((size_ + 1) * 2 > slots_.size()) {
    std::vector<Entry> old = std::move(slots_);
    reserve(old.size());
    for (const Entry& e : old) {
      if (e.key != kEmpty)
        insert(static_cast<int>(e.key >> 32), static_cast<int>(e.key), e.rank, e.id);
    }
  }
  uint64_t k = key(a, b);
  size_t mask = slots_.size() - 1;
  for (size_t i = hash(k) & mask;; i = (i + 1) & mask) {
    if (slots_[i].key == kEmpty) ++size_;
    if (slots_[i].key == kEmpty || slots_[i].key == k) {
      slots_[i] = {k, rank, id};
      return;
    }
  }
}

const MergeTable::Entry* MergeTable::find(int a, int b) const {
  if (slots_.empty()) return nullptr;
  uint64_t k = key(a, b);
  size_t mask = slots_.size() - 1;
  for (size_t i = hash(k) & mask;; i = (i + 1) & mask) {
    if (slots_[i].key == k) return &slots_[i];
    if (slots_[i].key == kEmpty) return nullptr;
  }
}

void parse_bpe_model(const json& model, const std::string& where, BpeModel& m) {
  const json* vocab = find(model, "vocab");
  if (!vocab) fail(where, "model has no 'vocab'");
  if (!vocab->is_object()) fail(where, "model 'vocab' is not an object of token -> id");
  m.vocab.reserve(vocab->size() * 2);
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    if (!it.value().is_number_integer())
      fail(where, "vocab id of '{}' is not an integer", it.key());
    long long id = it.value().get<long long>();
    if (id < 0 || id >= kMaxId) fail(where, "vocab id {} of '{}' out of range", id, it.key());
    m.vocab[it.key()] = static_cast<int>(id);
    if (static_cast<size_t>(id) >= m.id_to_token.size()) m.id_to_token.resize(id + 1);
    m.id_to_token[id] = it.key();
  }
  m.continuing_subword_prefix = get_string(model, "continuing_subword_prefix", where);
  m.end_of_word_suffix = get_string(model, "end_of_word_suffix", where);
  m.fuse_unk = get_bool(model, "fuse_unk", where, false);
  m.byte_fallback = get_bool(model, "byte_fallback", where, false);
  m.ignore_merges = get_bool(model, "ignore_merges", where, false);
  std::string unk = get_string(model, "unk_token", where);
  if (!unk.empty()) {
    auto it = m.vocab.find(unk);
    if (it == m.vocab.end()) fail(where, "unk_token '{}' is not in the vocab", unk);
    m.unk_id = it->second;
  }
  m.in_merge.assign(m.id_to_token.size(), false);
  if (const json* merges = find(model, "merges")) {
    if (!merges->is_array()) fail(where, "model 'merges' is not a list");
    parse_merges(*merges, where, m);
  }
  m.ascii_ids.assign(128, -1);
  if (m.continuing_subword_prefix.empty() && m.end_of_word_suffix.empty()) {
    for (int c = 0; c < 128; ++c) {
      auto it = m.vocab.find(std::string(1, static_cast<char>(c)));
      if (it != m.vocab.end()) m.ascii_ids[c] = it->second;
    }
  }
  m.byte_ids.assign(256, -1);
  for (int b = 0; b < 256; ++b) {
    auto it = m.vocab.find(fmt::format("<0x{:02X}>", b));
    if (it != m.vocab.end()) m.byte_ids[b] = it->second;
  }
}

namespace {

struct Symbol {
  int id;
  int prev, next;
  bool removed;
};

struct Candidate {
  int rank, pos, id;
  bool operator<(const Candidate& o) const {  // max-heap: lowest rank, then leftmost on top
    return rank != o.rank ? rank > o.rank : pos > o.pos;
  }
};

// Splits a word into initial symbols (one per character, with byte fallback / unk).
std::vector<int> initial_symbols(const BpeModel& m, std::string_view w) {
  std::vector<int> ids;
  ids.reserve(w.size());
  int unk_pending = 0;  // fused unk waiting to be emitted
  auto flush_unk = [&] {
    if (unk_pending) ids.push_back(m.unk_id);
    unk_pending = 0;
  };
  std::string s;
  for (size_t i = 0; i < w.size();) {
    size_t n = utf8::char_len(static_cast<unsigned char>(w[i]));
    if (i + n > w.size()) n = w.size() - i;
    bool first = i == 0, last = i + n == w.size();
    unsigned char c0 = static_cast<unsigned char>(w[i]);
    if (c0 < 128 && m.ascii_ids[c0] >= 0) {
      flush_unk();
      ids.push_back(m.ascii_ids[c0]);
      i += 1;
      continue;
    }
    s.assign(first ? "" : m.continuing_subword_prefix);
    s.append(w.substr(i, n));
    if (last) s.append(m.end_of_word_suffix);
    auto it = m.vocab.find(s);
    if (it != m.vocab.end()) {
      flush_unk();
      ids.push_back(it->second);
    } else {
      bool done = false;
      if (m.byte_fallback) {
        bool all = true;
        for (unsigned char c : s) all = all && m.byte_ids[c] >= 0;
        if (all) {
          flush_unk();
          for (unsigned char c : s) ids.push_back(m.byte_ids[c]);
          done = true;
        }
      }
      if (!done && m.unk_id >= 0) {
        if (unk_pending && !m.fuse_unk) flush_unk();
        unk_pending = 1;
      }
    }
    i += n;
  }
  flush_unk();
  return ids;
}

void merge_all(const BpeModel& m, std::vector<int>& ids) {
  if (ids.size() < 2 || m.merges.empty()) return;
  const int n = static_cast<int>(ids.size());
  std::vector<Symbol> sym(n);
  for (int i = 0; i < n; ++i) sym[i] = {ids[i], i - 1, i + 1 < n ? i + 1 : -1, false};
  std::vector<Candidate> heap_store;
  heap_store.reserve(n);
  std::priority_queue<Candidate> queue(std::less<Candidate>(), std::move(heap_store));
  auto push = [&](int pos) {
    int next = sym[pos].next;
    if (next < 0) return;
    if (const auto* e = m.merges.find(sym[pos].id, sym[next].id)) queue.push({e->rank, pos, e->id});
  };
  for (int i = 0; i + 1 < n; ++i) push(i);
  while (!queue.empty()) {
    Candidate top = queue.top();
    queue.pop();
    Symbol& cur = sym[top.pos];
    if (cur.removed || cur.next < 0) continue;
    Symbol& right = sym[cur.next];
    const auto* e = m.merges.find(cur.id, right.id);
    if (!e || e->id != top.id) continue;  // stale entry
    cur.id = top.id;
    right.removed = true;
    cur.next = right.next;
    if (cur.next >= 0) sym[cur.next].prev = top.pos;
    if (cur.prev >= 0) push(cur.prev);
    push(top.pos);
  }
  ids.clear();
  for (int i = 0; i >= 0 && i < n; i = sym[i].next) ids.push_back(sym[i].id);
}

}  // namespace

void BpeModel::tokenize(std::string_view word, std::vector<int>& out) const {
  if (word.empty()) return;
  if (ignore_merges) {
    auto it = vocab.find(std::string(word));
    if (it != vocab.end()) {
      out.push_back(it->second);
      return;
    }
  }
  bool cacheable = word.size() <= kCacheMaxWordBytes;
  std::string key;
  if (cacheable) {
    key.assign(word);
    std::lock_guard<std::mutex> lock(cache_mu);
    auto it = cache.find(key);
    if (it != cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int> ids = initial_symbols(*this, word);
  size_t first = out.size();
  std::vector<int> part;
  for (size_t i = 0; i < ids.size();) {
    size_t j = i;
    while (j < ids.size() && in_merge[ids[j]]) ++j;
    part.assign(ids.begin() + i, ids.begin() + j);
    merge_all(*this, part);
    out.insert(out.end(), part.begin(), part.end());
    if (j < ids.size()) out.push_back(ids[j]);
    i = j + 1;
  }
  ids.assign(out.begin() + first, out.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu);
    if (cache.size() >= kCacheCapacity) cache.clear();
    cache.emplace(std::move(key), std::move(ids));
  }
}

}  // namespace lowbit
