// The BPE model of tokenizer.json: vocab + ranked merges, applied to one pre-tokenized word with
// a priority queue over a linked list of symbols (O(n log n), as Hugging Face's Word::merge_all),
// with byte fallback, unk fusing, continuing-subword prefix / end-of-word suffix, ignore_merges
// and a cache of short words.
#pragma once

#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace lowbit {

// (left id, right id) -> (rank, merged id): an open-addressing table (the lookup is the hot
// loop of BPE).
class MergeTable {
 public:
  struct Entry {
    uint64_t key = kEmpty;
    int rank = 0, id = 0;
  };
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  void reserve(size_t n);
  void insert(int a, int b, int rank, int id);  // later inserts of a pair win
  const Entry* find(int a, int b) const;
  bool empty() const { return size_ == 0; }

 private:
  static uint64_t key(int a, int b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  static size_t hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return static_cast<size_t>(k);
  }
  std::vector<Entry> slots_;
  size_t size_ = 0;
};

struct BpeModel {
  std::unordered_map<std::string, int> vocab;
  std::vector<std::string> id_to_token;  // "" for unused ids
  MergeTable merges;
  std::vector<int> ascii_ids;  // id of each ASCII char alone (-1: none / not applicable)
  int unk_id = -1;
  std::string continuing_subword_prefix, end_of_word_suffix;
  bool fuse_unk = false, byte_fallback = false, ignore_merges = false;
  std::vector<int> byte_ids;  // byte -> id of "<0xXX>" (-1 when missing), byte_fallback only
  // in_merge[id]: the id appears in some merge. Ids that never do split a word into parts that
  // merge independently (keeps the queue small on long unsplit text, e.g. Llama-2 lines).
  std::vector<bool> in_merge;

  // Appends the ids of one word.
  void tokenize(std::string_view word, std::vector<int>& out) const;

  mutable std::mutex cache_mu;
  mutable std::unordered_map<std::string, std::vector<int>> cache;
};

// Parses "model" (type BPE or missing with merges). Throws Error("<where>: ...").
void parse_bpe_model(const nlohmann::json& model, const std::string& where, BpeModel& out);

}  // namespace lowbit
