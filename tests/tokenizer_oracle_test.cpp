// Oracle test: lowbit's tokenizers must give exactly the ids of Hugging Face tokenizers (the Rust
// library, run through Node: tools/oracle/encode.js) on real tokenizer.json files and real text.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "lowbit/tokenizer/tokenizer.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;

using lowbit::test::read_all;
using lowbit::test::split_lines;

// The texts of a file in the chunking that encode.js uses for `mode`.
std::vector<std::string> texts_of(const std::string& path, const std::string& mode) {
  std::string raw = read_all(path);
  if (mode == "whole") return {raw};
  std::vector<std::string> lines = split_lines(raw);
  if (mode == "lines") return lines;
  std::vector<std::string> out;
  for (const std::string& l : lines) {
    if (!l.empty()) out.push_back(nlohmann::json::parse(l)["text"].get<std::string>());
  }
  return out;
}

// Runs the oracle; returns one id list per text, or nullopt-like empty + ok=false.
bool run_oracle(const std::string& tok, const std::string& text, const std::string& mode,
                std::vector<std::vector<int>>* out) {
  std::string cmd = "node '" + lowbit::test::source_dir() + "/tools/oracle/encode.js' '" + tok +
                    "' '" + text + "' " + mode;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return false;
  std::string all;
  std::array<char, 1 << 16> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) all.append(buf.data(), n);
  if (pclose(p) != 0) return false;
  if (!all.empty() && all.back() == '\n') all.pop_back();
  for (const std::string& line : split_lines(all)) {
    std::vector<int> ids;
    std::istringstream ss(line);
    int id;
    while (ss >> id) ids.push_back(id);
    out->push_back(std::move(ids));
  }
  return true;
}

bool oracle_available() {
  return fs::exists(lowbit::test::source_dir() + "/tools/oracle/node_modules/tokenizers") &&
         std::system("node --version > /dev/null 2>&1") == 0;
}

struct Case {
  const char* text;
  const char* mode;
};

void check_tokenizer(const std::string& rel) {
  if (!oracle_available()) {
    if (lowbit::test::in_ci()) FAIL() << "oracle (node + tools/oracle/node_modules) missing";
    GTEST_SKIP() << "oracle not installed (cd tools/oracle && npm install --ignore-scripts)";
  }
  LOWBIT_SHARED_OR_SKIP(dir, rel);
  std::string shared = lowbit::test::shared_dir();
  std::string awkward = lowbit::test::source_dir() + "/tests/data/awkward.txt";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {shared + "/data/wikitext-2/wiki.test.raw", "whole"},
      {shared + "/data/tinystories/tinystories-v1-valid-first500.txt", "whole"},
      {shared + "/data/lambada/lambada_test.jsonl", "jsonl"},
      {awkward, "lines"},
      {awkward, "whole"},
  };
  auto tok = lowbit::load_tokenizer(dir + "/tokenizer.json");
  for (const auto& [text, mode] : cases) {
    std::vector<std::vector<int>> want;
    ASSERT_TRUE(run_oracle(dir + "/tokenizer.json", text, mode, &want)) << "oracle failed";
    std::vector<std::string> texts = texts_of(text, mode);
    ASSERT_EQ(want.size(), texts.size()) << text;
    size_t same_texts = 0, same_ids = 0, total_ids = 0;
    for (size_t i = 0; i < texts.size(); ++i) {
      std::vector<int> got = tok->encode(texts[i], true);
      total_ids += want[i].size();
      size_t k = 0;
      while (k < got.size() && k < want[i].size() && got[k] == want[i][k]) ++k;
      same_ids += k;
      if (got == want[i]) {
        ++same_texts;
      } else {
        ADD_FAILURE() << rel << " x " << text << " text " << i << ": first difference at token "
                      << k << " (oracle " << want[i].size() << " ids, lowbit " << got.size() << ")";
      }
    }
    std::printf("[oracle] %-32s %-48s %-5s texts %zu/%zu identical, ids %zu/%zu (%.2f%%)\n",
                rel.c_str(), fs::path(text).filename().c_str(), mode.c_str(), same_texts,
                texts.size(), same_ids, total_ids,
                total_ids ? 100.0 * same_ids / total_ids : 100.0);
  }
}

}  // namespace

TEST(TokenizerOracle, Llama2) { check_tokenizer("tokenizers/llama-2"); }
TEST(TokenizerOracle, Mistral) { check_tokenizer("tokenizers/mistral-7b-v0.1"); }
TEST(TokenizerOracle, Phi35) { check_tokenizer("tokenizers/phi-3.5-mini"); }
TEST(TokenizerOracle, Gpt2) { check_tokenizer("tokenizers/gpt2"); }
TEST(TokenizerOracle, SmolLM2) { check_tokenizer("tokenizers/smollm2-135m"); }
TEST(TokenizerOracle, Clip) { check_tokenizer("tokenizers/clip-vit-base-patch32"); }
TEST(TokenizerOracle, Stories260K) { check_tokenizer("models/stories260K-hf"); }
TEST(TokenizerOracle, BabyLlama105) { check_tokenizer("models/babyllama-105-hf"); }
