// `lowbit eval ppl | lambada | kld`: perplexity (GPTQ or llama.cpp convention), LAMBADA accuracy,
// and KL divergence between two models. See docs/EVAL.md.
#include <cblas.h>
#include <fmt/format.h>
#include <omp.h>

#include <algorithm>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "cli/output.h"
#include "cli/runtime_args.h"
#include "cli/validators.h"
#include "lowbit/eval/kld.h"
#include "lowbit/eval/lambada.h"
#include "lowbit/eval/perplexity.h"
#include "lowbit/eval/report.h"
#include "lowbit/eval/text_sets.h"
#include "lowbit/io/output_dir.h"
#include "lowbit/model/load.h"
#include "lowbit/model/transformer.h"
#include "lowbit/util/error.h"
#include "lowbit/util/threads.h"

namespace lowbit::cli {

namespace {

struct EvalArgs {
  std::string model, base, text, data = "lambada", convention = "gptq", json;
  int ctx = 0;  // 0: default_ctx(model)
  int64_t limit = 0;
  int threads = 0;
  bool verbose = false, no_bos = false;
  bool no_special = false;  // ppl / kld: the text tokenized without special tokens
  // Evaluation measures what the weights' quantization costs: activations stay fp32 unless
  // --act int8 asks for the int8-activation kernels (whose own error then adds in).
  RuntimeArgs rt = [] {
    RuntimeArgs r;
    r.act = "f32";
    return r;
  }();
};

// Called first by every eval command: the thread count, and the --json path checked against the
// inputs before any work (a report never replaces a model or a text).
void start(const EvalArgs& a, const std::string& text) {
  set_num_threads(a.threads);
  if (a.json.empty()) return;
  std::vector<std::string> inputs = model_input_paths(a.model);
  if (!a.base.empty()) {
    for (const std::string& p : model_input_paths(a.base)) inputs.push_back(p);
  }
  inputs.push_back(text);
  try {
    inputs.push_back(resolve_text_path(text));  // a named text set: its file
  } catch (const Error&) {
  }
  check_output_path(a.json, inputs, /*folder=*/false);
}

LoadedModel load_with_tokenizer(const std::string& path, const RuntimeOptions& rt) {
  LoadedModel m = load_model(path, "", true, rt);
  if (!m.tokenizer) fail(path, "no tokenizer found for this model");
  return m;
}

int pick_ctx(const EvalArgs& a, const LoadedModel& m) {
  const int ctx = a.ctx > 0 ? a.ctx : default_ctx(m.weights->cfg);
  check_ctx(m.weights->cfg, ctx, m.source);
  return ctx;
}

void emit(const EvalArgs& a, const std::string& header, const std::string& body, nlohmann::json j) {
  outf("{}{}", header, body);
  out_flush();
  if (!a.json.empty()) write_json_file(a.json, j);
}

// The text's tokens for the windows: as the convention tokenizes it, or with --no-special
// without any special token (Hugging Face's add_special_tokens=False).
std::vector<int> eval_tokens(const EvalArgs& a, Convention conv, const Tokenizer& tok,
                             const std::string& text) {
  if (a.no_special) return tok.encode(text, /*add_special=*/false);
  return tokenize_for_convention(conv, tok, text);
}

int run_ppl(const EvalArgs& a) {
  start(a, a.text);
  const Convention conv = parse_convention(a.convention);
  LoadedModel m = load_with_tokenizer(a.model, apply_runtime_args(a.rt));
  const int ctx = pick_ctx(a, m);
  const std::string text = load_text_set(a.text);
  const std::vector<int> tokens = eval_tokens(a, conv, *m.tokenizer, text);
  const WindowPlan plan = plan_windows(conv, static_cast<int64_t>(tokens.size()), ctx, a.limit);
  Transformer model(m.weights, ctx, transformer_options(a.rt, a.model));
  const PplResult r = perplexity(model, tokens, plan, convention_bos(conv, *m.tokenizer));
  nlohmann::json j = to_json(r);
  j["model"] = a.model;
  j["text"] = a.text;
  j["special_tokens"] = !a.no_special;
  emit(a, fmt::format("model:           {}\ntext:            {}\n", a.model, a.text),
       format_result(r), j);
  return 0;
}

int run_kld(const EvalArgs& a) {
  start(a, a.text);
  const Convention conv = parse_convention(a.convention);
  LoadedModel base = load_with_tokenizer(a.base, [&] {
    RuntimeOptions base;  // the reference model: as stored, fp32
    base.use_mmap = !a.rt.no_mmap;
    return base;
  }());
  LoadedModel cand = load_with_tokenizer(a.model, apply_runtime_args(a.rt));
  if (base.weights->cfg.vocab_size != cand.weights->cfg.vocab_size)
    fail(a.model, "vocabulary of {} tokens differs from the base model's {}",
         cand.weights->cfg.vocab_size, base.weights->cfg.vocab_size);
  int ctx = a.ctx;
  if (ctx <= 0) ctx = std::min(default_ctx(base.weights->cfg), default_ctx(cand.weights->cfg));
  check_ctx(base.weights->cfg, ctx, base.source);
  check_ctx(cand.weights->cfg, ctx, cand.source);
  const std::string text = load_text_set(a.text);
  const std::vector<int> tokens = eval_tokens(a, conv, *base.tokenizer, text);
  if (eval_tokens(a, conv, *cand.tokenizer, text) != tokens)
    fail(a.model, "its tokenizer encodes the text differently from the base model's");
  const WindowPlan plan = plan_windows(conv, static_cast<int64_t>(tokens.size()), ctx, a.limit);
  TransformerOptions base_opt;
  base_opt.name = a.base;
  Transformer tb(base.weights, ctx, base_opt),
      tm(cand.weights, ctx, transformer_options(a.rt, a.model));
  const KldResult r = kl_divergence(tb, tm, tokens, plan, convention_bos(conv, *base.tokenizer));
  nlohmann::json j = to_json(r);
  j["base"] = a.base;
  j["model"] = a.model;
  j["text"] = a.text;
  j["special_tokens"] = !a.no_special;
  emit(a,
       fmt::format("base:            {}\nmodel:           {}\ntext:            {}\n", a.base,
                   a.model, a.text),
       format_result(r), j);
  return 0;
}

std::string tail(const std::string& s, size_t n) {
  return s.size() <= n ? s : "..." + s.substr(s.size() - n);
}

// Token ids shown as their pieces, e.g. [" sig"|"ns"].
// `prev` is the token before the first one (SentencePiece keeps a leading space after it).
std::string pieces(const Tokenizer& tok, int prev, const std::vector<int>& ids) {
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i)
    out += fmt::format("{}{:?}", i ? "|" : "", tok.decode_token(i ? ids[i - 1] : prev, ids[i]));
  return out + "]";
}

int run_lambada(const EvalArgs& a) {
  start(a, a.data);
  LoadedModel m = load_with_tokenizer(a.model, apply_runtime_args(a.rt));
  const LambadaSet set = load_lambada(resolve_text_path(a.data));
  Transformer model(m.weights, default_ctx(m.weights->cfg), transformer_options(a.rt, a.model));
  LambadaOptions opt;
  opt.limit = a.limit;
  opt.add_special = !a.no_bos;
  opt.n_examples = a.verbose ? 5 : 0;
  const LambadaResult r = evaluate_lambada(model, *m.tokenizer, set, opt);
  for (const LambadaExample& ex : r.examples) {
    const int prev = ex.req.context.back();
    outf("context:   {:?}\ntarget:    {:?} = {}\npredicted: {}  [{}]\n\n", tail(ex.doc.context, 60),
         ex.doc.target, pieces(*m.tokenizer, prev, ex.req.continuation),
         pieces(*m.tokenizer, prev, ex.score.predicted), ex.score.correct ? "correct" : "wrong");
  }
  nlohmann::json j = to_json(r);
  j["model"] = a.model;
  j["data"] = a.data;
  j["bos"] = !a.no_bos;
  emit(a, fmt::format("model:           {}\nmax context:     {}\n", a.model, model.max_ctx()),
       format_result(r), j);
  return 0;
}

void add_common(CLI::App* sub, EvalArgs* a) {
  sub->add_option("--limit", a->limit, "Evaluate at most N windows / documents")
      ->check(int_in(1, int64_t{1} << 40));
  sub->add_option("--json", a->json, "Also write the results to this JSON file");
  sub->add_option("--threads,-t", a->threads, "Threads (OpenMP and BLAS)")->check(int_in(1, 1024));
  add_runtime_options(sub, &a->rt);
}

void add_windows(CLI::App* sub, EvalArgs* a) {
  sub->add_option("--text", a->text,
                  "wikitext2 | wikitext2-valid | tinystories | tinystories-calib | FILE")
      ->required();
  sub->add_option("--ctx", a->ctx, "Window length in tokens (default: model maximum, <= 2048)")
      ->check(int_in(1, 1 << 24));
  sub->add_option("--convention", a->convention, "gptq | llamacpp (default gptq)");
  sub->add_flag("--no-special", a->no_special,
                "Tokenize the text without special tokens (no BOS; Hugging Face's "
                "add_special_tokens=False)");
}

}  // namespace

void add_eval(CLI::App& app, Runner* run) {
  auto args = std::make_shared<EvalArgs>();
  auto* eval = app.add_subcommand("eval", "Evaluate a model: perplexity, LAMBADA, KL divergence");
  eval->require_subcommand(1);

  auto* ppl = eval->add_subcommand("ppl", "Perplexity over a text (GPTQ or llama.cpp windows)");
  ppl->add_option("--model", args->model, "Model folder, llama2.c checkpoint or GGUF file")
      ->required();
  add_windows(ppl, args.get());
  add_common(ppl, args.get());
  ppl->callback([run, args] { *run = [args] { return run_ppl(*args); }; });

  auto* lam = eval->add_subcommand("lambada", "LAMBADA (OpenAI) last-word accuracy and perplexity");
  lam->add_option("--model", args->model, "Model folder, llama2.c checkpoint or GGUF file")
      ->required();
  lam->add_option("--data", args->data, "lambada (default) or a jsonl FILE of {\"text\": ...}");
  lam->add_flag("--verbose", args->verbose, "Print the first few examples");
  lam->add_flag("--no-bos", args->no_bos, "Encode without special tokens (older lm-eval)");
  add_common(lam, args.get());
  lam->callback([run, args] { *run = [args] { return run_lambada(*args); }; });

  auto* kld = eval->add_subcommand("kld", "KL divergence of a model from a base model");
  kld->add_option("--base", args->base, "Reference model")->required();
  kld->add_option("--model", args->model, "Model compared with the base")->required();
  add_windows(kld, args.get());
  add_common(kld, args.get());
  kld->callback([run, args] { *run = [args] { return run_kld(*args); }; });
}

}  // namespace lowbit::cli
