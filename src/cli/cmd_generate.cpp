// `lowbit generate`: stream tokens of a model's continuation of a prompt to stdout.
#include <fmt/format.h>
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "cli/commands.h"
#include "cli/output.h"
#include "cli/runtime_args.h"
#include "cli/validators.h"
#include "lowbit/model/load.h"
#include "lowbit/model/sampler.h"
#include "lowbit/model/transformer.h"
#include "lowbit/util/error.h"
#include "lowbit/util/threads.h"

namespace lowbit::cli {

namespace {

struct GenerateOptions {
  std::string model, tokenizer, prompt;
  int n = 128;
  int ctx = 0;
  int threads = 0;
  SamplerParams sp;
  bool no_bos = false;
  RuntimeArgs rt;
};

int run_generate(const GenerateOptions& o) {
  set_num_threads(o.threads);
  LoadedModel m = load_model(o.model, o.tokenizer, true, apply_runtime_args(o.rt));
  const ModelConfig& c = m.weights->cfg;
  std::vector<int> ids = m.tokenizer->encode(o.prompt, !o.no_bos);
  if (ids.empty()) {
    if (m.tokenizer->bos_id() < 0) fail(o.model, "empty prompt and the tokenizer has no BOS token");
    ids.push_back(m.tokenizer->bos_id());
  }
  const int ctx = o.ctx > 0 ? o.ctx : std::min(c.max_seq_len, static_cast<int>(ids.size()) + o.n);
  if (static_cast<int>(ids.size()) > ctx) {
    fail(o.model, "the prompt of {} tokens does not fit the context of {} tokens{}", ids.size(),
         ctx, o.ctx > 0 ? "" : " the model allows");
  }
  Transformer tf(m.weights, ctx, transformer_options(o.rt, o.model));
  Sampler sampler(o.sp);

  // Echo the prompt text as the model sees it, then stream the continuation.
  std::string echoed;
  for (size_t i = 0; i < ids.size(); ++i) {
    echoed += m.tokenizer->decode_token(i == 0 ? -1 : ids[i - 1], ids[i]);
  }
  out(echoed);
  out_flush();

  const auto t0 = std::chrono::steady_clock::now();
  const float* logits = tf.forward(ids.data(), static_cast<int>(ids.size()));
  const auto t1 = std::chrono::steady_clock::now();
  int prev = ids.back();
  int generated = 0;
  for (; generated < o.n; ++generated) {
    const int next = sampler.sample(logits, c.vocab_size);
    // A story ends at EOS; llama2.c-trained models signal it by emitting BOS.
    if (next == m.tokenizer->eos_id() || next == m.tokenizer->bos_id()) break;
    const std::string piece = m.tokenizer->decode_token(prev, next);
    out(piece);
    out_flush();
    prev = next;
    if (tf.pos() >= ctx) {
      ++generated;
      break;
    }
    logits = tf.forward(&next, 1);
  }
  const auto t2 = std::chrono::steady_clock::now();
  out("\n");
  const double prefill_s = std::chrono::duration<double>(t1 - t0).count();
  const double decode_s = std::chrono::duration<double>(t2 - t1).count();
  std::fprintf(stderr, "[%zu prompt tokens in %.3f s, %d generated in %.3f s: %.1f tokens/s]\n",
               ids.size(), prefill_s, generated, decode_s,
               decode_s > 0 ? generated / decode_s : 0.0);
  return 0;
}

}  // namespace

void add_generate(CLI::App& app, Runner* run) {
  auto o = std::make_shared<GenerateOptions>();
  auto* sub = app.add_subcommand("generate", "generate text from a prompt, streaming to stdout");
  sub->add_option("--model,-m", o->model,
                  "HF folder, llama2.c .bin, folder holding one, or GGUF file")
      ->required();
  sub->add_option("--tokenizer", o->tokenizer, "tokenizer file/folder (default: beside the model)");
  sub->add_option("--prompt,-p", o->prompt, "prompt text (\"\" = start from BOS)");
  sub->add_option("-n,--n-predict", o->n, "tokens to generate")->check(int_in(0, 1 << 20));
  sub->add_option("--temp", o->sp.temperature, "temperature (0 = greedy)")
      ->check(real_in(0.0, 100.0));
  sub->add_option("--top-k", o->sp.top_k, "top-k (0 = off)")->check(int_in(0, 1 << 24));
  sub->add_option("--top-p", o->sp.top_p, "top-p nucleus (1 = off)")->check(real_in(0.0, 1.0));
  sub->add_option("--seed", o->sp.seed, "sampling seed")->check(int_in(0, INT64_MAX));
  sub->add_option("--ctx", o->ctx, "context length (default: prompt + n, capped by the model)")
      ->check(int_in(0, 1 << 24));
  sub->add_option("-t,--threads", o->threads, "threads (default: all cores)")
      ->check(int_in(0, 1024));
  sub->add_flag("--no-bos", o->no_bos, "do not add BOS / special tokens to the prompt");
  add_runtime_options(sub, &o->rt);
  sub->callback([run, o] { *run = [o] { return run_generate(*o); }; });
}

}  // namespace lowbit::cli
