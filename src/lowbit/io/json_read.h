// Reading JSON from strangers (config.json, tokenizer.json, index files, recipes, quantization
// configs): the size is bounded before the file is read, the nesting depth before it is parsed (a
// deeply nested document would make the parser build a tree of millions of levels), and the
// memory the parsed tree may take is checked against what the machine has.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace lowbit {

// No JSON file lowbit reads nests deeper than this (tokenizer.json: ~6 levels).
constexpr int kMaxJsonDepth = 64;

// Throws Error("<where>: JSON nested deeper than <max_depth> levels") when `text` nests deeper.
void check_json_depth(const std::string& where, std::string_view text, int max_depth);

// Parses `text` (depth-checked first). Throws Error("<where>: not valid JSON (...)") on a syntax
// error or a NUL byte anywhere (nlohmann alone would stop reading there and accept the part
// before it); `json` is nlohmann::json or nlohmann::ordered_json.
template <typename Json = nlohmann::json>
Json parse_json(const std::string& where, std::string_view text, int max_depth = kMaxJsonDepth);

// The JSON document in the regular file `path`, at most max_bytes long, parsed as above after
// checking the machine has the memory its tree may take. `what` names the kind of file in errors.
template <typename Json = nlohmann::json>
Json read_json_file(const std::string& path, uint64_t max_bytes, const char* what,
                    int max_depth = kMaxJsonDepth);

// The text of a nlohmann exception without the library's "[json.exception.type_error.302] "
// prefix, for messages that quote it.
std::string json_error_text(const nlohmann::json::exception& e);

}  // namespace lowbit
