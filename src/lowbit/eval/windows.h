// The window / scoring plan of perplexity-style evaluations, as pure arithmetic (no model).
//
// Both conventions tokenize the whole text once and cut it into consecutive, non-overlapping
// windows of `ctx` tokens; the ragged tail (fewer than ctx tokens) is dropped. Each window runs
// with a fresh KV cache. Row i of a window's logits predicts the window's token i+1.
//  * gptq (GPTQ / AWQ / Quark tables): tokens = tokenizer(text) with its default special tokens
//    (BOS first for Llama). Rows 0 .. ctx-2 are scored: ctx-1 predictions per window.
//  * llamacpp (llama-perplexity): tokens = [BOS] + tokenizer(text) without special tokens. The
//  first
//    token of every window is replaced by BOS; rows ctx/2 .. ctx-2 are scored: ctx-1-ctx/2
//    predictions per window.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lowbit {

class Tokenizer;

enum class Convention { kGptq, kLlamaCpp };

// "gptq" | "llamacpp" (also "llama.cpp"); throws Error otherwise.
Convention parse_convention(const std::string& name);
const char* convention_name(Convention c);

struct WindowPlan {
  Convention convention = Convention::kGptq;
  int ctx = 0;
  int64_t n_tokens = 0;             // tokens of the whole text
  int64_t n_windows_available = 0;  // n_tokens / ctx
  int64_t n_windows = 0;            // evaluated (after the limit)
  int first_scored = 0;             // first scored logits row
  int n_scored = 0;                 // scored rows per window: first_scored .. ctx-2
  bool bos_first = false;           // replace each window's first token by BOS

  int64_t tokens_scored() const { return n_windows * n_scored; }
};

// Smallest ctx a convention accepts (at least one scored prediction per window).
int min_ctx(Convention c);

// Plans the windows for a text of n_tokens tokens. limit > 0 caps the number of windows.
// Throws Error for ctx < min_ctx(c) and when the text holds fewer than ctx tokens.
WindowPlan plan_windows(Convention c, int64_t n_tokens, int ctx, int64_t limit = 0);

// The BOS id the convention puts first: llama-perplexity only when the tokenizer adds one
// (its add_bos), the tokenizer's BOS for gptq; -1 for none.
int convention_bos(Convention c, const Tokenizer& tok);

// Tokenizes the text as the convention does (see above).
std::vector<int> tokenize_for_convention(Convention c, const Tokenizer& tok,
                                         const std::string& text);

// The ctx tokens of window w, with the first replaced by bos_id when plan.bos_first and
// bos_id >= 0.
std::vector<int> window_tokens(const WindowPlan& plan, const std::vector<int>& tokens, int64_t w,
                               int bos_id);

}  // namespace lowbit
