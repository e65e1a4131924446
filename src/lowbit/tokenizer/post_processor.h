// Post-processors of tokenizer.json ("post_processor"): what encode(add_special=true) puts around
// a single sequence. TemplateProcessing, RobertaProcessing, BertProcessing, ByteLevel (adds
// nothing) and Sequence.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace lowbit {

struct PostProcessor {
  bool present = false;     // false when "post_processor" is null
  std::vector<int> prefix;  // ids before the sequence
  std::vector<int> suffix;  // ids after it
};

PostProcessor parse_post_processor(const nlohmann::json& j, const std::string& where);

}  // namespace lowbit
