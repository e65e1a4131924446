// LAMBADA (OpenAI variant) last-word prediction, with lm-evaluation-harness `lambada_openai`
// semantics:
//  * each jsonl line is {"text": ...}; context = text.rsplit(" ", 1)[0], target = " " + last word;
//    a text without a space cannot be split (lm-eval would raise) and is skipped and counted;
//  * trailing whitespace of the context moves to the front of the target (lm-eval _encode_pair);
//  * whole = encode(context + target), ctx = encode(context), continuation = whole[len(ctx):]
//    (so SentencePiece merges across the boundary are handled as lm-eval does); encode uses the
//    tokenizer's default special tokens (BOS for Llama), as lm-eval does when add_bos_token is left
//    to the tokenizer (add_special = false reproduces older lm-eval, which added none);
//  * an empty context is replaced by [BOS] (or [EOS] when there is no BOS), lm-eval's prefix token;
//  * input = (ctx + continuation)[-(max_ctx+1):][:-1]; the continuation is scored on the last
//    rows; a doc is correct when every continuation token is the argmax;
//  * accuracy = mean(correct); perplexity = exp(-mean over docs of sum log p(continuation)).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lowbit {

class Tokenizer;
class Transformer;

struct LambadaDoc {
  std::string context;  // text before the last space
  std::string target;   // " " + last word
};

// Splits like Python text.rsplit(" ", 1); nullopt when the text holds no space.
std::optional<LambadaDoc> split_lambada(const std::string& text);

struct LambadaSet {
  std::vector<LambadaDoc> docs;
  int64_t n_skipped = 0;  // texts without a space
};

// Reads a jsonl file of {"text": ...} lines (blank lines ignored). Throws Error("<path>:<line>:
// ...") for malformed lines and Error("<path>: empty text file") for a file without documents.
LambadaSet load_lambada(const std::string& path);
// The same over the text of such a file; `path` names it in errors.
LambadaSet parse_lambada(const std::string& path, std::string_view content);

struct LambadaRequest {
  std::vector<int> context, continuation;
};

LambadaRequest encode_lambada(const Tokenizer& tok, const LambadaDoc& doc, bool add_special = true);

struct LambadaScore {
  double logprob = 0;          // sum of log p over the continuation tokens
  bool correct = false;        // every continuation token is the greedy argmax
  std::vector<int> predicted;  // the argmax at each continuation position
};

// Scores one request with a fresh KV cache (model.max_ctx() is lm-eval's max_length).
LambadaScore score_lambada(Transformer& model, const LambadaRequest& req);

struct LambadaExample {
  LambadaDoc doc;
  LambadaRequest req;
  LambadaScore score;
};

struct LambadaResult {
  int64_t n_docs = 0, n_correct = 0, n_skipped = 0;
  double accuracy = 0, accuracy_stderr = 0;
  double mean_logprob = 0;  // per document
  double ppl = 0;           // exp(-mean_logprob)
  double seconds = 0;
  std::vector<LambadaExample> examples;  // the first n_examples documents
};

struct LambadaOptions {
  int64_t limit = 0;  // > 0: at most this many documents
  bool add_special = true;
  int n_examples = 0;
};

LambadaResult evaluate_lambada(Transformer& model, const Tokenizer& tok, const LambadaSet& set,
                               const LambadaOptions& opt);

}  // namespace lowbit
