// A model's tokenizer as GGUF metadata (the `tokenizer.ggml.*` keys llama.cpp reads), built from
// the tokenizer files lowbit loads:
//  * a SentencePiece tokenizer.model: llama.cpp's "llama" vocabulary (pieces, scores, types), as
//    llama.cpp's own converter writes it;
//  * a tokenizer.json BPE with byte fallback (a SentencePiece model converted by Hugging Face):
//    also "llama", the score of a piece = −(rank of the first merge that makes it), so llama.cpp's
//    highest-score-first merging applies the merges in their order (llama.cpp's converter writes
//    −1000 for every piece, which loses that order);
//  * a byte-level tokenizer.json BPE with GPT-2's pre-tokenizer: "gpt2" with pre "gpt-2",
//    tokens and merges as stored;
//  * a llama2.c tokenizer.bin: "llama" with the file's scores;
//  * a GGUF file: its own tokenizer.ggml.* metadata, read back (read_gguf_vocab).
// The vocabulary is padded with unused "[PAD<id>]" tokens up to the model's embedding rows.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lowbit/io/gguf_reader.h"
#include "lowbit/io/gguf_writer.h"

namespace lowbit {

class Tokenizer;

struct GgufVocab {
  std::string model;  // "llama" or "gpt2"
  std::string pre;    // gpt2: the pre-tokenizer name llama.cpp knows
  std::vector<std::string> tokens;
  std::vector<float> scores;   // llama
  std::vector<int32_t> types;  // 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte
  std::vector<std::string> merges;  // gpt2
  int bos = -1, eos = -1, unk = -1;
  bool add_bos = false, add_eos = false, add_space_prefix = true;
  std::string source;  // the file it was read from
};

// The vocabulary of the tokenizer at `tokenizer_path` (a folder, tokenizer.json, .model or
// llama2.c .bin, as load_model locates it) for a model with `vocab_size` embedding rows. Throws
// Error("<file>: ...") for a tokenizer GGUF cannot express or one larger than the model.
GgufVocab gguf_vocab(const std::string& tokenizer_path, int vocab_size);

// The same for tokenizer.json text held in memory (fuzzing); `name` names it in errors and `tok`
// is lowbit's tokenizer of that text (for the BOS/EOS behaviour).
GgufVocab gguf_vocab_from_json(const std::string& json_text, const std::string& name,
                               const Tokenizer& tok, int vocab_size);

void write_gguf_vocab(const GgufVocab& v, gguf::Writer* w);

// The inverse of write_gguf_vocab: a GGUF file's tokenizer.ggml.* metadata (llama.cpp's defaults
// where a key is absent: "llama" adds BOS 1, EOS 2, UNK 0). Throws Error("<path>: ...") for
// missing tokens, arrays of the wrong length or special ids outside the vocabulary.
GgufVocab read_gguf_vocab(const gguf::Reader& r);

}  // namespace lowbit
