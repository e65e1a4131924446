// Added tokens of tokenizer.json ("added_tokens"): matched in the text before normalization
// (normalized=false) or in each normalized piece (normalized=true), leftmost-longest, with the
// lstrip / rstrip / single_word rules of Hugging Face's AddedVocabulary.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace lowbit {

struct AddedToken {
  std::string content;
  int id = -1;
  bool special = false, lstrip = false, rstrip = false, single_word = false, normalized = false;
};

// A piece of text cut by added-token matching: token >= 0 for a matched added token.
struct Segment {
  size_t begin, end;
  int token;
};

class AddedTokenMatcher {
 public:
  void build(std::vector<AddedToken> tokens);  // tokens with empty content are ignored
  // Cuts `text` into segments covering it (empty input -> no segments).
  std::vector<Segment> split(std::string_view text) const;
  bool empty() const { return tokens_.empty(); }

 private:
  std::vector<AddedToken> tokens_;
  std::vector<std::vector<int>> by_first_byte_;  // indices into tokens_, longest first
};

std::vector<AddedToken> parse_added_tokens(const nlohmann::json& j, const std::string& where);

}  // namespace lowbit
