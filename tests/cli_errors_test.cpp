// Bad input at the CLI: one line "lowbit: <file>: <problem>" on stderr, exit code 2, no crash.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "test_util.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;

// Exit code 2 and exactly one non-empty output line that starts with "lowbit: " and names `what`.
void expect_one_line_error(const std::string& args, const std::string& what) {
  const test::CliResult r = test::run_cli(args);
  EXPECT_EQ(r.rc, 2) << args << "\n" << r.out;
  std::string out = r.out;
  while (!out.empty() && (out.front() == '\n')) out.erase(0, 1);
  while (!out.empty() && (out.back() == '\n')) out.pop_back();
  EXPECT_EQ(out.find('\n'), std::string::npos) << "more than one line: " << r.out;
  EXPECT_EQ(out.rfind("lowbit: ", 0), 0u) << out;
  EXPECT_NE(out.find(what), std::string::npos) << "expected '" << what << "' in: " << out;
}

using test::TempDir;

void write(const fs::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary);
  f << bytes;
}

TEST(CliErrors, MissingModel) {
  expect_one_line_error("generate --model /nonexistent/model -n 1", "/nonexistent/model");
}

TEST(CliErrors, UnknownSubcommandAndBadFlags) {
  EXPECT_EQ(test::run_cli("frobnicate").rc, 2);
  EXPECT_EQ(test::run_cli("generate --model x --temp -1").rc, 2);
  EXPECT_EQ(test::run_cli("generate --model x -n abc").rc, 2);
  EXPECT_EQ(test::run_cli("eval ppl --model x --text y --ctx 0").rc, 2);
}

TEST(CliErrors, TruncatedSafetensorsInModelFolder) {
  LOWBIT_SHARED_OR_SKIP(src, "models/stories260K-hf");
  TempDir dir("trunc");
  for (const char* f : {"config.json", "tokenizer.json", "tokenizer_config.json"}) {
    if (fs::exists(fs::path(src) / f)) fs::copy_file(fs::path(src) / f, dir.path / f);
  }
  // Keep the header but cut the data short: offsets now point past the end of the file.
  const std::string bytes = test::read_all((fs::path(src) / "model.safetensors").string());
  write(dir.path / "model.safetensors", bytes.substr(0, bytes.size() / 2));
  expect_one_line_error("generate --model " + dir.path.string() + " -n 1", "model.safetensors");
}

TEST(CliErrors, ConfigWithoutRequiredField) {
  TempDir dir("cfg");
  write(dir.path / "config.json", R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64})");
  write(dir.path / "model.safetensors", std::string(8, '\0'));
  expect_one_line_error("bench --model " + dir.path.string() + " -p 1 -n 1 --no-probe",
                        "config.json");
}

TEST(CliErrors, UnsupportedArchitecture) {
  TempDir dir("arch");
  write(dir.path / "config.json", R"({"architectures": ["BertModel"], "hidden_size": 64})");
  expect_one_line_error("bench --model " + dir.path.string() + " -p 1 -n 1 --no-probe",
                        "BertModel");
}

TEST(CliErrors, TruncatedLlama2cCheckpoint) {
  LOWBIT_SHARED_OR_SKIP(src, "models/stories260K/stories260K.bin");
  TempDir dir("l2c");
  const std::string bytes = test::read_all(src);
  write(dir.path / "model.bin", bytes.substr(0, bytes.size() - 100));
  expect_one_line_error(
      "bench --model " + (dir.path / "model.bin").string() + " -p 1 -n 1 --no-probe", "model.bin");
}

TEST(CliErrors, EmptyPromptFileForTokenize) {
  LOWBIT_SHARED_OR_SKIP(tok, "tokenizers/llama-2");
  TempDir dir("empty");
  write(dir.path / "empty.txt", "");
  expect_one_line_error(
      "tokenize --tokenizer " + tok + " --text " + (dir.path / "empty.txt").string(), "empty.txt");
}

}  // namespace
}  // namespace lowbit
