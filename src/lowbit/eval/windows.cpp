#include "lowbit/eval/windows.h"

#include "lowbit/tokenizer/tokenizer.h"
#include "lowbit/util/error.h"

namespace lowbit {

Convention parse_convention(const std::string& name) {
  if (name == "gptq") return Convention::kGptq;
  if (name == "llamacpp" || name == "llama.cpp") return Convention::kLlamaCpp;
  fail("--convention", "unknown convention '{}' (expected gptq or llamacpp)", name);
}

const char* convention_name(Convention c) { return c == Convention::kGptq ? "gptq" : "llamacpp"; }

int min_ctx(Convention c) { return c == Convention::kGptq ? 2 : 3; }

WindowPlan plan_windows(Convention c, int64_t n_tokens, int ctx, int64_t limit) {
  if (ctx < min_ctx(c))
    fail("--ctx", "ctx {} is too small for the {} convention (minimum {})", ctx, convention_name(c),
         min_ctx(c));
  if (n_tokens < ctx)
    fail("text", "too little text: {} tokens, one window needs ctx = {} tokens", n_tokens, ctx);
  WindowPlan p;
  p.convention = c;
  p.ctx = ctx;
  p.n_tokens = n_tokens;
  p.n_windows_available = n_tokens / ctx;
  p.n_windows = limit > 0 && limit < p.n_windows_available ? limit : p.n_windows_available;
  p.first_scored = c == Convention::kGptq ? 0 : ctx / 2;
  p.n_scored = ctx - 1 - p.first_scored;
  p.bos_first = c == Convention::kLlamaCpp;
  return p;
}

int convention_bos(Convention c, const Tokenizer& tok) {
  if (c == Convention::kGptq || tok.bos_id() < 0) return tok.bos_id();
  const std::vector<int> with = tok.encode("a", true), without = tok.encode("a", false);
  const bool adds = !with.empty() && with.front() == tok.bos_id() &&
                    (without.empty() || without.front() != tok.bos_id());
  return adds ? tok.bos_id() : -1;
}

std::vector<int> tokenize_for_convention(Convention c, const Tokenizer& tok,
                                         const std::string& text) {
  if (c == Convention::kGptq) return tok.encode(text, /*add_special=*/true);
  std::vector<int> body = tok.encode(text, /*add_special=*/false);
  const int bos = convention_bos(c, tok);
  if (bos < 0) return body;
  std::vector<int> out;
  out.reserve(body.size() + 1);
  out.push_back(bos);
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

std::vector<int> window_tokens(const WindowPlan& plan, const std::vector<int>& tokens, int64_t w,
                               int bos_id) {
  if (w < 0 || w >= plan.n_windows_available ||
      static_cast<int64_t>(tokens.size()) < (w + 1) * plan.ctx)
    fail("window_tokens", "window {} out of range", w);
  auto begin = tokens.begin() + w * plan.ctx;
  std::vector<int> out(begin, begin + plan.ctx);
  if (plan.bos_first && bos_id >= 0) out[0] = bos_id;
  return out;
}

}  // namespace lowbit
