// End-to-end evaluation on the real shared models (library and `lowbit eval` CLI), and the CLI's
// answers to bad input (exit code 2, one line).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "lowbit/eval/lambada.h"
#include "lowbit/eval/perplexity.h"
#include "lowbit/eval/text_sets.h"
#include "lowbit/model/load.h"
#include "lowbit/model/transformer.h"
#include "test_util.h"

namespace lowbit {
namespace {

using test::CliResult;
using test::run_cli;

// The non-empty lines of s.
std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) out.push_back(l);
  return out;
}

std::string write_temp(const std::string& name, const std::string& content) {
  const std::string path = ::testing::TempDir() + name;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
  return path;
}

// The first `n_chars` of the TinyStories evaluation text with the "\n<|endoftext|>\n" story
// separators turned into "\n": plain stories, as the model was trained on.
std::string tinystories_without_markers(const std::string& path, size_t n_chars) {
  const std::string t = load_text_set(path);
  const std::string marker = "\n<|endoftext|>\n";
  std::string out;
  size_t start = 0;
  for (size_t pos; (pos = t.find(marker, start)) != std::string::npos && out.size() < n_chars;) {
    out.append(t, start, pos - start);
    out.push_back('\n');
    start = pos + marker.size();
  }
  if (out.size() < n_chars) out.append(t, start);
  return out.substr(0, n_chars);
}

double gptq_ppl(const std::string& model_path, const std::string& text, int ctx, int windows) {
  LoadedModel m = load_model(model_path);
  const std::vector<int> toks = tokenize_for_convention(Convention::kGptq, *m.tokenizer, text);
  Transformer t(m.weights, ctx);
  return perplexity(t, toks, plan_windows(Convention::kGptq, toks.size(), ctx, windows),
                    m.tokenizer->bos_id())
      .ppl;
}

TEST(EvalShared, Stories260KPerplexityIsNearThePublishedLoss) {
  LOWBIT_SHARED_OR_SKIP(model, "models/stories260K-hf");
  LOWBIT_SHARED_OR_SKIP(text, "data/tinystories/tinystories-v1-valid-first500.txt");
  // Published validation loss 1.2968 nats/token -> ppl 3.66. Two windows of 512 tokens.
  const double ppl = gptq_ppl(model, tinystories_without_markers(text, 6000), 512, 2);
  EXPECT_GT(ppl, 3.0);
  EXPECT_LT(ppl, 5.0);
  // The raw file's "<|endoftext|>" markers are byte pieces the model never saw: much higher.
  const double raw = gptq_ppl(model, load_text_set(text).substr(0, 6000), 512, 2);
  EXPECT_GT(raw, ppl * 1.3);
  EXPECT_LT(raw, 15.0);
}

TEST(EvalShared, Llama2cAndHfLayoutsGiveTheSamePerplexity) {
  LOWBIT_SHARED_OR_SKIP(hf, "models/babyllama-105-hf");
  LOWBIT_SHARED_OR_SKIP(bin, "models/babyllama-105/model5000.bin");
  LOWBIT_SHARED_OR_SKIP(text, "data/tinystories/tinystories-v1-valid-first500.txt");
  const std::string t = tinystories_without_markers(text, 3000);
  const double a = gptq_ppl(hf, t, 256, 2), b = gptq_ppl(bin, t, 256, 2);
  EXPECT_NEAR(a, b, 1e-3 * a);
  EXPECT_GT(a, 1.5);  // a character-level model: low per-character perplexity, but not trivial
  EXPECT_LT(a, 4.0);
}

TEST(EvalCli, PplJsonAndLambada) {
  LOWBIT_SHARED_OR_SKIP(model, "models/stories260K-hf");
  LOWBIT_SHARED_OR_SKIP(lambada, "data/lambada/lambada_test.jsonl");
  const std::string json = ::testing::TempDir() + "eval_cli_ppl.json";
  const std::string text = write_temp("eval_cli_text.txt", std::string(40, 'a') + " once upon");
  CliResult r = run_cli("eval ppl --model " + model + " --text " + text +
                        " --ctx 8 --convention llamacpp --json " + json);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("convention:      llamacpp"), std::string::npos) << r.out;
  nlohmann::json j = nlohmann::json::parse(std::ifstream(json));
  EXPECT_EQ(j["ctx"], 8);
  EXPECT_EQ(j["tokens_scored_per_window"], 3);
  EXPECT_EQ(j["tokens_scored"], j["windows"].get<int>() * 3);
  EXPECT_TRUE(std::isfinite(j["ppl"].get<double>()));
  EXPECT_GT(j["ppl"].get<double>(), 1.0);

  const std::string ljson = ::testing::TempDir() + "eval_cli_lambada.json";
  r = run_cli("eval lambada --model " + model + " --data " + lambada + " --limit 3 --json " +
              ljson);
  ASSERT_EQ(r.rc, 0) << r.out;
  nlohmann::json l = nlohmann::json::parse(std::ifstream(ljson));
  EXPECT_EQ(l["docs"], 3);
  EXPECT_GE(l["accuracy"].get<double>(), 0.0);
  EXPECT_LE(l["accuracy"].get<double>(), 1.0);
  EXPECT_GT(l["ppl"].get<double>(), 1.0);
  std::remove(json.c_str());
  std::remove(ljson.c_str());
}

TEST(EvalCli, KldOfTheTwoLayoutsOfOneModelIsZero) {
  LOWBIT_SHARED_OR_SKIP(hf, "models/stories260K-hf");
  LOWBIT_SHARED_OR_SKIP(bin, "models/stories260K/stories260K.bin");
  LOWBIT_SHARED_OR_SKIP(baby, "models/babyllama-105-hf");
  const std::string json = ::testing::TempDir() + "eval_cli_kld.json";
  CliResult r = run_cli("eval kld --base " + hf + " --model " + bin +
                        " --text tinystories --ctx 128 --limit 2 --json " + json);
  ASSERT_EQ(r.rc, 0) << r.out;
  nlohmann::json j = nlohmann::json::parse(std::ifstream(json));
  EXPECT_EQ(j["tokens_scored"], 2 * 127);
  EXPECT_LT(j["kld_mean"].get<double>(), 1e-6);
  EXPECT_GT(j["top1_agreement"].get<double>(), 99.0);
  EXPECT_NEAR(j["ppl_ratio"].get<double>(), 1.0, 1e-4);
  std::remove(json.c_str());
  r = run_cli("eval kld --base " + hf + " --model " + baby + " --text tinystories --limit 1");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.out.find("vocabulary of 105 tokens differs from the base model's 512"),
            std::string::npos)
      << r.out;
}

// Bad input: exit code 2 and exactly one line, "lowbit: <message>".
void expect_one_line_error(const std::string& args, const std::string& message) {
  CliResult r = run_cli(args);
  EXPECT_EQ(r.rc, 2) << args << "\n" << r.out;
  const std::vector<std::string> ls = lines(r.out);
  ASSERT_EQ(ls.size(), 1u) << r.out;
  EXPECT_EQ(ls[0].rfind("lowbit: ", 0), 0u) << ls[0];
  EXPECT_NE(ls[0].find(message), std::string::npos) << ls[0];
}

TEST(EvalCli, BadInputExitsWithCode2AndOneLine) {
  LOWBIT_SHARED_OR_SKIP(model, "models/stories260K-hf");
  const std::string empty = write_temp("eval_cli_empty.txt", "");
  const std::string tiny = write_temp("eval_cli_tiny.txt", "Hi.");
  const std::string m = "eval ppl --model " + model;
  expect_one_line_error(m + " --text tinystories --ctx 1024",
                        "ctx 1024 exceeds the model's maximum context 512");
  expect_one_line_error(m + " --text " + empty, empty + ": empty text file");
  expect_one_line_error(m + " --text no-such-text-set", "unknown text set or missing file");
  expect_one_line_error(m + " --text " + tiny + " --ctx 64", "too little text");
  expect_one_line_error(m + " --text " + tiny + " --convention foo", "unknown convention");
  expect_one_line_error("eval ppl --model /nonexistent/model --text " + tiny, "/nonexistent");
  expect_one_line_error("eval kld --base " + model + " --model " + model + " --text " + empty,
                        "empty text file");
  expect_one_line_error("eval lambada --model " + model + " --data " + empty, "empty text file");
  std::remove(empty.c_str());
  std::remove(tiny.c_str());
}

}  // namespace
}  // namespace lowbit
