// Picks the tokenizer kind from a path: folder, tokenizer.json, SentencePiece .model, llama2.c
// .bin, and reports the unsupported ones (tiktoken tokenizer.model without tokenizer.json) clearly.
#include <filesystem>
#include <nlohmann/json.hpp>

#include "lowbit/io/gguf_reader.h"
#include "lowbit/io/json_read.h"
#include "lowbit/io/limits.h"
#include "lowbit/tokenizer/gguf_tokenizer.h"
#include "lowbit/tokenizer/hf_tokenizer.h"
#include "lowbit/tokenizer/llama2c_tokenizer.h"
#include "lowbit/tokenizer/sentencepiece_tokenizer.h"
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

// The tokenizer class named by tokenizer_config.json beside `model_path` ("" when none).
std::string tokenizer_class(const std::string& model_path) {
  const std::string cfg = (fs::path(model_path).parent_path() / "tokenizer_config.json").string();
  if (!path_exists(cfg)) return "";
  const auto j = read_json_file<nlohmann::json>(cfg, kMaxTokenizerConfigBytes, "tokenizer config");
  auto it = j.is_object() ? j.find("tokenizer_class") : j.end();
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

// What a family's tokenizer class adds to its SentencePiece model. ChatGLM2/3
// (tokenization_chatglm.py): special tokens numbered after the model's pieces ("[MASK]" "[gMASK]"
// "[sMASK]" "sop" "eop", then ChatGLM3's role tokens, which on ChatGLM2 name unused padding rows),
// and "[gMASK]" "sop" instead of BOS before the text.
void configure_for_class(SentencePieceTokenizer* tok, const std::string& model_path) {
  if (tokenizer_class(model_path) != "ChatGLMTokenizer") return;
  tok->append_special_pieces({"[MASK]", "[gMASK]", "[sMASK]", "sop", "eop", "<|system|>",
                              "<|user|>", "<|assistant|>", "<|observation|>"});
  tok->set_add_bos(false);
  tok->set_prefix_pieces({"[gMASK]", "sop"});
}

// A .model file: SentencePiece, or a tiktoken ranks file (Llama-3's tokenizer.model, "<base64>
// <rank>" lines), which lowbit does not read.
std::shared_ptr<Tokenizer> load_model_file(const std::string& path) {
  const std::string bytes = read_tokenizer_file(path);
  try {
    auto tok = SentencePieceTokenizer::from_serialized(bytes, path);
    configure_for_class(tok.get(), path);
    return tok;
  } catch (const Error&) {
    const std::string head = bytes.substr(0, 256);
    const bool tiktoken = head.find(' ') != std::string::npos &&
                          head.find('\0') == std::string::npos &&
                          head.find('\n') != std::string::npos;
    if (tiktoken) {
      fail(path,
           "unsupported tokenizer: tiktoken ranks file (Llama-3 style) without tokenizer.json");
    }
    throw;
  }
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
    if (path_exists(path + "/tokenizer.model")) return load_model_file(path + "/tokenizer.model");
    if (path_exists(path + "/tokenizer.bin"))
      return Llama2cTokenizer::from_file(path + "/tokenizer.bin", -1);
    fail(path, "no tokenizer.json (or tokenizer.model, tokenizer.bin) in this folder");
  }
  if (kind == PathKind::kMissing) fail(path, "no such tokenizer file or folder");
  std::string ext = fs::path(path).extension().string();
  if (ext == ".json") {
    return HfTokenizer::from_json(read_tokenizer_file(path), path,
                                  fs::path(path).parent_path().string());
  }
  if (ext == ".model") return load_model_file(path);
  if (ext == ".gguf" || gguf::has_gguf_magic(path)) return load_gguf_tokenizer(path);
  if (ext == ".bin") return Llama2cTokenizer::from_file(path, -1);
  std::string text = read_tokenizer_file(path);
  if (starts_with_json(text)) {
    return HfTokenizer::from_json(text, path, fs::path(path).parent_path().string());
  }
  fail(path,
       "unknown tokenizer file type (expected tokenizer.json, a SentencePiece .model or a "
       "llama2.c .bin)");
}

}  // namespace lowbit
