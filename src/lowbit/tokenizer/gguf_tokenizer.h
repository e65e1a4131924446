// A GGUF file's tokenizer (its tokenizer.ggml.* metadata, read by read_gguf_vocab) on lowbit's
// own tokenizer classes — the one place that maps GGUF vocabularies onto them:
//  * "llama" (SentencePiece-style scored pieces, byte fallback "<0xXX>"): Llama2cTokenizer's
//    highest-score-pair merging, as llama.cpp runs it, with the file's BOS/EOS/UNK, add_bos /
//    add_eos and add_space_prefix; control, unknown and unused tokens decode to nothing;
//  * "gpt2" (byte-level BPE with merges) with pre-tokenizer "gpt-2" (or none named): a
//    tokenizer.json BPE model with GPT-2's ByteLevel pre-tokenizer and decoder (HfTokenizer);
//    control tokens are special added tokens, user-defined ones added tokens.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "lowbit/export/gguf_vocab.h"
#include "lowbit/tokenizer/tokenizer.h"

namespace lowbit {

std::shared_ptr<Tokenizer> tokenizer_from_gguf_vocab(const GgufVocab& v);
// The tokenizer of the GGUF file at `path`.
std::shared_ptr<Tokenizer> load_gguf_tokenizer(const std::string& path);
// "gpt2" vocabularies as the tokenizer.json (first) and tokenizer_config.json (second) that
// HfTokenizer reads — also what `lowbit quantize` writes beside a model quantized from a GGUF file.
std::pair<nlohmann::json, nlohmann::json> gguf_vocab_to_tokenizer_json(const GgufVocab& v);
// Writes the vocabulary as tokenizer files lowbit reads back to the same ids into folder `dir`:
// "gpt2" as tokenizer.json + tokenizer_config.json, "llama" as a llama2.c tokenizer.bin (which
// runs the same algorithm; only for llama2.c's conventions: UNK 0, BOS 1 added, EOS 2, a space
// prefix, byte pieces at 3..258 or none). Throws Error("<source>: ...") for a "llama" vocabulary
// outside them.
void write_gguf_tokenizer_files(const GgufVocab& v, const std::string& dir);
// The same files as (name, content), without writing them (checks a vocabulary early).
std::vector<std::pair<std::string, std::string>> gguf_tokenizer_files(const GgufVocab& v);

}  // namespace lowbit
