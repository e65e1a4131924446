// `lowbit tokenize --tokenizer DIR_OR_FILE --text FILE [--no-special]`: prints the token ids of
// the file's text, space-separated on one line.
#include <fmt/format.h>

#include <cstdio>
#include <string>

#include "cli/commands.h"
#include "cli/output.h"
#include "lowbit/io/limits.h"
#include "lowbit/tokenizer/tokenizer.h"
#include "lowbit/util/error.h"
#include "lowbit/util/file.h"

namespace lowbit::cli {

namespace {

struct TokenizeArgs {
  std::string tokenizer;
  std::string model;
  std::string text;
  bool no_special = false;
};

std::string read_text(const std::string& path) {
  std::string s = read_file(path, kMaxTextBytes, "text");
  if (s.empty()) fail(path, "empty text file");
  return s;
}

int run_tokenize(const TokenizeArgs& a) {
  std::string where = a.tokenizer.empty() ? a.model : a.tokenizer;
  if (where.empty()) throw Error("tokenize: give --tokenizer DIR_OR_FILE (or --model DIR)");
  auto tok = load_tokenizer(where);
  std::vector<int> ids = tok->encode(read_text(a.text), !a.no_special);
  std::string line;
  line.reserve(ids.size() * 6);
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) line += ' ';
    line += std::to_string(ids[i]);
  }
  line += '\n';
  out(line);
  return 0;
}

}  // namespace

void add_tokenize(CLI::App& app, Runner* run) {
  auto args = std::make_shared<TokenizeArgs>();
  auto* sub = app.add_subcommand("tokenize", "Print the token ids of a text file");
  sub->add_option(
      "--tokenizer", args->tokenizer,
      "tokenizer.json, a SentencePiece .model, a folder holding one, or a llama2.c tokenizer .bin");
  sub->add_option("--model", args->model,
                  "model folder holding its tokenizer, or a GGUF file (alias)");
  sub->add_option("--text", args->text, "text file to tokenize")->required();
  sub->add_flag("--no-special", args->no_special, "do not add BOS/EOS etc.");
  sub->callback([run, args] { *run = [args] { return run_tokenize(*args); }; });
}

}  // namespace lowbit::cli
