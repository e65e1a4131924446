// Loading a model (weights + tokenizer) from what the user points at:
//  * a Hugging Face folder (config.json + model.safetensors or sharded safetensors + index);
//  * a llama2.c checkpoint file (*.bin, v0 header), tokenizer from `tokenizer_path` or the single
//    tok*.bin / tokenizer.bin beside it;
//  * a folder holding one llama2.c checkpoint and its tokenizer;
//  * an ONNX decoder (a .onnx file, or a folder with config.json and model.onnx but no safetensors)
//    with the Hugging Face config.json and tokenizer beside it, as optimum exports them
//    (model/onnx_checkpoint.h);
//  * a GGUF file (name ending in .gguf, or GGUF magic), tokenizer from its metadata.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "lowbit/model/weights.h"
#include "lowbit/tokenizer/tokenizer.h"
#include "lowbit/util/mapped_file.h"

namespace lowbit {

struct LoadedModel {
  std::shared_ptr<ModelWeights> weights;
  std::shared_ptr<Tokenizer> tokenizer;  // may be null when load_tokenizer == false
  std::string source;                    // the path the user gave
};

// Where the weights and tokenizer of what the user pointed at are.
struct ModelLocation {
  bool hf = false;        // a Hugging Face folder (else a llama2.c or GGUF file)
  bool gguf = false;      // a GGUF file (its tokenizer is the file itself)
  std::string weights;    // the HF folder or the llama2.c .bin
  std::string onnx;       // the .onnx file when the weights are an ONNX graph (hf is true)
  std::string tokenizer;  // tokenizer.json folder/file or tok*.bin ("" when not found and
                          // find_tokenizer == false)
};
// Resolves `path` as load_model does. Throws Error("<path>: ...") when nothing loadable is there.
ModelLocation locate_model(const std::string& path, const std::string& tokenizer_path = "",
                           bool find_tokenizer = true);

// The files and folders a model at `path` is read from — the path itself, its weights and the
// tokenizer locate_model would pick (when one is found) — for the rule that no output may be
// written over an input. Never throws: what cannot be located is left out.
std::vector<std::string> model_input_paths(const std::string& path,
                                           const std::string& tokenizer_path = "");

// The tokenizer at `path` as locate_model finds it: a llama2.c tok*.bin (read for a model of
// `vocab_size` tokens), a tokenizer.json (file or folder) or a GGUF file's metadata.
std::shared_ptr<Tokenizer> open_tokenizer(const std::string& path, int vocab_size);

// How weights are held in memory for the forward pass (the runtime's choices, not the file's).
struct RuntimeOptions {
  bool use_mmap = true;  // see load_model
  // Quantized linears (GPTQ / lowbit checkpoints) repacked into the kernels' compute layout
  // (kernels/packed_weight.h). false, or a linear the kernels cannot run, dequantizes to fp32 at
  // load: the reference path.
  bool repack = true;
  // Unquantized linear weights (incl. lm_head) held in bf16 instead of fp32: half the bytes per
  // decoded token, values rounded to bf16 unless the checkpoint is bf16 already.
  bool bf16_linears = false;
  // Keep each quantized linear's codes and scales as stored (Linear::quant), for exporters.
  bool keep_quantized = false;
};

// use_mmap: fp32 tensors point into the memory-mapped file (no copy; the default). Without it
// they are copied into anonymous memory backed by huge pages, which costs RAM and load time but
// streams ~3x faster in decode (page-cache mappings use 4 KiB pages): `--no-mmap` in the CLI.
LoadedModel load_model(const std::string& path, const std::string& tokenizer_path = "",
                       bool load_tokenizer = true, bool use_mmap = true);

LoadedModel load_model(const std::string& path, const std::string& tokenizer_path,
                       bool load_tokenizer, const RuntimeOptions& rt);

// The two loaders behind load_model.
std::shared_ptr<ModelWeights> load_hf_weights(const std::string& dir, bool use_mmap = true);
std::shared_ptr<ModelWeights> load_hf_weights(const std::string& dir, const RuntimeOptions& rt);
std::shared_ptr<ModelWeights> load_llama2c_weights(const std::string& bin_path,
                                                   bool use_mmap = true);
// An ONNX decoder graph with config.json beside it (fp32/fp16 initializers and com.microsoft
// MatMulNBits linears).
std::shared_ptr<ModelWeights> load_onnx_weights(const std::string& onnx_path,
                                                const RuntimeOptions& rt);
// The same over a file already mapped or in memory (MappedFile::from_memory: tests, fuzzing); its
// path() names it in errors. use_mmap: the weights point into `file` (kept alive) instead of a
// copy.
std::shared_ptr<ModelWeights> load_llama2c_weights(std::shared_ptr<MappedFile> file,
                                                   bool use_mmap = true);

// GGUF file -> weights (model/load_gguf.cpp), by the table of model/gguf_names.h: q4_0 / q8_0
// linears repacked for the kernels (rt.repack), every other quantized type dequantized to fp32.
std::shared_ptr<ModelWeights> load_gguf_weights(const std::string& path, const RuntimeOptions& rt);
std::shared_ptr<ModelWeights> load_gguf_weights(std::shared_ptr<MappedFile> file,
                                                const RuntimeOptions& rt);
// Whether `path` is a GGUF file: a regular file named *.gguf or starting with the GGUF magic.
bool is_gguf_path(const std::string& path);

// Converts every fp32 linear weight that is not packed yet to a bf16 packed copy (the tied
// lm_head gets its own copy; the embedding table stays fp32).
void pack_linears_bf16(ModelWeights* w);

}  // namespace lowbit
