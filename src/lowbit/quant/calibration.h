// Calibration data: random token windows of a text that evaluation does not use.
//   wikitext2    -> WikiText-2 validation split (wikitext2-valid, joined as for evaluation)
//   tinystories  -> tinystories-calib (TinyStories validation stories after the first 500)
//   anything else -> a text set name of eval/text_sets.h or a file path
// The whole text is tokenized once (with the tokenizer's specials, e.g. BOS at the start) and
// `nsamples` windows of `seqlen` tokens start at uniformly random offsets (seeded mt19937_64), as
// the GPTQ reference samples its calibration set.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lowbit/tokenizer/tokenizer.h"

namespace lowbit {

struct CalibOptions {
  std::string text = "wikitext2";
  int nsamples = 128;
  int seqlen = 512;
  uint64_t seed = 0;
};

struct CalibSet {
  int nsamples = 0, seqlen = 0;
  std::vector<int> tokens;  // [nsamples, seqlen]
  int64_t text_tokens = 0;  // tokens of the whole text
  std::string path;         // the file read
};

// The text-set name or path calibration reads for `name` (see above).
std::string calib_text_source(const std::string& name);

// Throws Error("<file>: ...") when the text has fewer than nsamples·seqlen tokens (the windows
// would mostly repeat the same text), or when nsamples/seqlen are not positive.
CalibSet make_calibration_set(const Tokenizer& tok, const CalibOptions& opt);

}  // namespace lowbit
