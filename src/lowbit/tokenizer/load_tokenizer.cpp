// Picks the tokenizer kind from a path: folder, tokenizer.json, llama2.c .bin, and reports the
// unsupported ones (tiktoken / SentencePiece .model without tokenizer.json) clearly.
#include <filesystem>

#include "lowbit/io/limits.h"
#include "lowbit/tokenizer/hf_tokenizer.h"
#include "lowbit/tokenizer/llama2c_tokenizer.h"
#include "lowbit/tokenizer/tokenizer.h"
#include "lowbit/util/error.h"
#include "lowbit/util/file.h"

namespace lowbit {

namespace fs = std::filesystem;

namespace {

std::string read_tokenizer_file(const std::string& path) {
  return read_file(path, kMaxTokenizerJsonBytes, "tokenizer file");
}

bool starts_with_json(const std::string& s) {
  for (char c : s) {
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    return c == '{';
  }
  return false;
}

[[noreturn]] void unsupported_model_file(const std::string& path) {
  std::string head = read_tokenizer_file(path).substr(0, 256);
  bool tiktoken = head.find(' ') != std::string::npos && head.find('\0') == std::string::npos &&
                  head.find('\n') != std::string::npos;
  if (tiktoken) {
    fail(path, "unsupported tokenizer: tiktoken ranks file (Llama-3 style) without tokenizer.json");
  }
  fail(path, "unsupported tokenizer: SentencePiece .model without tokenizer.json");
}

}  // namespace

std::shared_ptr<Tokenizer> load_tokenizer_from_json_string(const std::string& json_text,
                                                           const std::string& name) {
  return HfTokenizer::from_json(json_text, name, "");
}

std::shared_ptr<Tokenizer> load_llama2c_tokenizer(const std::string& bin_path, int vocab_size) {
  if (vocab_size <= 0) fail(bin_path, "bad vocab size {}", vocab_size);
  return Llama2cTokenizer::from_file(bin_path, vocab_size);
}

std::shared_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  const PathKind kind = path_kind(path);
  if (kind == PathKind::kDir) {
    std::string json_path = path + "/tokenizer.json";
    if (path_exists(json_path))
      return HfTokenizer::from_json(read_tokenizer_file(json_path), json_path, path);
    if (path_exists(path + "/tokenizer.model")) unsupported_model_file(path + "/tokenizer.model");
    if (path_exists(path + "/tokenizer.bin"))
      return Llama2cTokenizer::from_file(path + "/tokenizer.bin", -1);
    fail(path, "no tokenizer.json (or tokenizer.bin) in this folder");
  }
  if (kind == PathKind::kMissing) fail(path, "no such tokenizer file or folder");
  std::string ext = fs::path(path).extension().string();
  if (ext == ".json") {
    return HfTokenizer::from_json(read_tokenizer_file(path), path,
                                  fs::path(path).parent_path().string());
  }
  if (ext == ".model") unsupported_model_file(path);
  if (ext == ".bin") return Llama2cTokenizer::from_file(path, -1);
  std::string text = read_tokenizer_file(path);
  if (starts_with_json(text)) {
    return HfTokenizer::from_json(text, path, fs::path(path).parent_path().string());
  }
  fail(path, "unknown tokenizer file type (expected tokenizer.json or a llama2.c .bin)");
}

}  // namespace lowbit
