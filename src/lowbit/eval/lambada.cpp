#include "lowbit/eval/lambada.h"

#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>

#include "lowbit/eval/logprobs.h"
#include "lowbit/io/json_read.h"
#include "lowbit/io/limits.h"
#include "lowbit/model/transformer.h"
#include "lowbit/tokenizer/tokenizer.h"
#include "lowbit/util/error.h"
#include "lowbit/util/file.h"
#include "lowbit/util/progress.h"

namespace lowbit {

std::optional<LambadaDoc> split_lambada(const std::string& text) {
  const size_t sp = text.rfind(' ');
  if (sp == std::string::npos) return std::nullopt;
  LambadaDoc doc{text.substr(0, sp), " "};
  doc.target.append(text, sp + 1);
  return doc;
}

LambadaSet load_lambada(const std::string& path) {
  return parse_lambada(path, read_file(path, kMaxTextBytes, "LAMBADA file"));
}

LambadaSet parse_lambada(const std::string& path, std::string_view content) {
  LambadaSet set;
  int64_t line_no = 0;
  for (size_t pos = 0; pos < content.size();) {
    size_t nl = content.find('\n', pos);
    if (nl == std::string::npos) nl = content.size();
    const std::string_view line(content.data() + pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(line_no);
    const nlohmann::json j = parse_json(where, line);
    if (!j.is_object() || !j.contains("text") || !j["text"].is_string())
      fail(where, "expected an object with a string \"text\"");
    auto doc = split_lambada(j["text"].get<std::string>());
    if (doc) {
      set.docs.push_back(std::move(*doc));
    } else {
      ++set.n_skipped;
    }
  }
  if (set.docs.empty() && set.n_skipped == 0) fail(path, "empty text file");
  if (set.docs.empty()) fail(path, "no document holds a space to split off the last word");
  return set;
}

LambadaRequest encode_lambada(const Tokenizer& tok, const LambadaDoc& doc, bool add_special) {
  std::string context = doc.context, continuation = doc.target;
  // lm-eval _encode_pair: move the context's trailing whitespace into the continuation.
  const size_t keep = context.find_last_not_of(" \t\n\r\v\f");
  const size_t n_ctx = keep == std::string::npos ? 0 : keep + 1;
  continuation = context.substr(n_ctx) + continuation;
  context.resize(n_ctx);
  LambadaRequest req;
  if (context.empty()) {
    const int prefix = tok.bos_id() >= 0 ? tok.bos_id() : tok.eos_id();
    if (prefix < 0) fail("lambada", "empty context and the tokenizer has no BOS/EOS token");
    req.context = {prefix};
    req.continuation = tok.encode(continuation, add_special);
    return req;
  }
  std::vector<int> whole = tok.encode(context + continuation, add_special);
  req.context = tok.encode(context, add_special);
  const size_t n = std::min(req.context.size(), whole.size());
  req.continuation.assign(whole.begin() + static_cast<std::ptrdiff_t>(n), whole.end());
  return req;
}

LambadaScore score_lambada(Transformer& model, const LambadaRequest& req) {
  std::vector<int> all = req.context;
  all.insert(all.end(), req.continuation.begin(), req.continuation.end());
  const size_t keep = std::min(all.size(), static_cast<size_t>(model.max_ctx()) + 1);
  std::vector<int> input(all.end() - static_cast<std::ptrdiff_t>(keep), all.end() - 1);
  const int n_in = static_cast<int>(input.size());
  const int n_cont = static_cast<int>(req.continuation.size());
  LambadaScore s;
  s.correct = true;
  if (n_cont == 0) return s;  // lm-eval: empty sum, all() of nothing is true
  if (n_cont > n_in)
    fail("lambada", "continuation of {} tokens does not fit a context of {}", n_cont,
         model.max_ctx());
  const int vocab = model.config().vocab_size;
  for (int t : all)
    if (t < 0 || t >= vocab)
      fail("lambada", "token id {} is outside the model's vocabulary of {}", t, vocab);
  model.reset();
  const float* logits = model.forward(input.data(), n_in, /*all_logits=*/true);
  for (int k = 0; k < n_cont; ++k) {
    const float* row = logits + static_cast<size_t>(n_in - n_cont + k) * vocab;
    const int target = req.continuation[k];
    s.logprob += static_cast<double>(row[target]) - log_sum_exp(row, vocab);
    const int best = argmax(row, vocab);
    s.predicted.push_back(best);
    if (best != target) s.correct = false;
  }
  return s;
}

LambadaResult evaluate_lambada(Transformer& model, const Tokenizer& tok, const LambadaSet& set,
                               const LambadaOptions& opt) {
  const auto start = std::chrono::steady_clock::now();
  const int64_t n = opt.limit > 0 ? std::min<int64_t>(opt.limit, set.docs.size())
                                  : static_cast<int64_t>(set.docs.size());
  LambadaResult r;
  r.n_skipped = set.n_skipped;
  MeanStats correct, logprob;
  Progress progress("lambada", n);
  for (int64_t i = 0; i < n; ++i) {
    const LambadaDoc& doc = set.docs[i];
    LambadaRequest req = encode_lambada(tok, doc, opt.add_special);
    LambadaScore s = score_lambada(model, req);
    correct.add(s.correct ? 1.0 : 0.0);
    logprob.add(s.logprob);
    if (i < opt.n_examples) r.examples.push_back({doc, std::move(req), std::move(s)});
    progress.update(i + 1, fmt::format("acc {:.4f}", correct.mean()));
  }
  progress.finish();
  r.n_docs = n;
  r.n_correct = static_cast<int64_t>(std::llround(correct.sum));
  r.accuracy = correct.mean();
  r.accuracy_stderr = correct.stderr_mean();
  r.mean_logprob = logprob.mean();
  r.ppl = std::exp(-r.mean_logprob);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace lowbit
