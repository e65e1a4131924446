#include "lowbit/quant/calibration.h"

#include <random>

#include "lowbit/eval/text_sets.h"
#include "lowbit/util/error.h"

namespace lowbit {

std::string calib_text_source(const std::string& name) {
  if (name == "wikitext2") return "wikitext2-valid";
  if (name == "tinystories") return "tinystories-calib";
  return name;
}

CalibSet make_calibration_set(const Tokenizer& tok, const CalibOptions& opt) {
  if (opt.nsamples <= 0) fail("--nsamples", "must be positive, got {}", opt.nsamples);
  if (opt.seqlen <= 0) fail("--seqlen", "must be positive, got {}", opt.seqlen);
  const std::string source = calib_text_source(opt.text);
  CalibSet set;
  set.path = resolve_text_path(source);
  const std::vector<int> ids = tok.encode(load_text_set(source), /*add_special=*/true);
  set.text_tokens = static_cast<int64_t>(ids.size());
  const int64_t need = static_cast<int64_t>(opt.nsamples) * opt.seqlen;
  if (set.text_tokens < need) {
    fail(set.path,
         "calibration text has {} tokens, fewer than --nsamples {} x --seqlen {} = {}; use a "
         "longer text or fewer/shorter samples",
         set.text_tokens, opt.nsamples, opt.seqlen, need);
  }
  set.nsamples = opt.nsamples;
  set.seqlen = opt.seqlen;
  set.tokens.reserve(static_cast<size_t>(need));
  std::mt19937_64 rng(opt.seed);
  std::uniform_int_distribution<int64_t> start(0, set.text_tokens - opt.seqlen);
  for (int s = 0; s < opt.nsamples; ++s) {
    const int64_t b = start(rng);
    set.tokens.insert(set.tokens.end(), ids.begin() + b, ids.begin() + b + opt.seqlen);
  }
  return set;
}

}  // namespace lowbit
