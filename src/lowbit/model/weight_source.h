// A model's tensors read one at a time as fp32, for work that must not hold the whole model in
// memory (the layer-by-layer quantization pipeline). A Hugging Face folder is memory-mapped and
// each tensor converted on request; the mapped pages are dropped from the resident set again
// (release) so only what the caller copied stays. A llama2.c file (small by nature) is loaded
// whole through load_llama2c_weights. A GGUF file of f32/f16/bf16 tensors is memory-mapped and
// read one tensor at a time like a Hugging Face folder (quantized GGUF files are refused).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "lowbit/io/gguf_reader.h"
#include "lowbit/io/safetensors.h"
#include "lowbit/model/arch.h"
#include "lowbit/model/weights.h"

namespace lowbit {

class WeightSource {
 public:
  // `path`: what load_model accepts (HF folder, llama2.c .bin, folder with one .bin, GGUF file).
  // Quantized checkpoints are refused (quantizing them again would compound the error).
  static std::unique_ptr<WeightSource> open(const std::string& path);

  const ModelConfig& config() const { return cfg_; }
  const ArchSpec& arch() const { return *arch_; }
  // The HF folder, the llama2.c file or the GGUF file.
  const std::string& path() const { return path_; }
  bool is_hf() const { return store_ != nullptr; }
  bool is_gguf() const { return gguf_ != nullptr; }
  // The HF folder the weights come from ("" for llama2.c): tokenizer and config files live there.
  const std::string& hf_dir() const { return hf_dir_; }
  // The ONNX graph the tensors come from ("" unless the model is an ONNX decoder; hf_dir() is then
  // its folder, holding config.json and the tokenizer).
  const std::string& onnx_file() const { return onnx_file_; }
  // The llama2.c checkpoint file ("" for HF).
  const std::string& llama2c_file() const { return llama2c_file_; }

  // The name of a tensor as stored in this checkpoint ("model.layers.3.mlp.down_proj.weight";
  // without the base-model prefix when the checkpoint has none; the name the family's table
  // gives when the checkpoint holds none of its names). Only for roles present in the config.
  std::string name(TensorRole role, int layer) const;
  // Whether the checkpoint stores the role transposed ([in, out], GPT-2's Conv1D).
  bool transposed(TensorRole role) const;
  // fp32 copy of a tensor in lowbit's orientation ([out, in] for linears; fused tensors whole).
  // Throws Error on a missing tensor, a shape that disagrees with the config, or NaN/Inf.
  std::vector<float> read(TensorRole role, int layer) const;
  // The dtype the tensor is stored in (F32 for llama2.c).
  DType stored_dtype(TensorRole role, int layer) const;
  // Drops the mapped pages of a tensor from the resident set (no-op for llama2.c).
  void release(TensorRole role, int layer) const;

 private:
  const TensorSpec& spec(TensorRole role, int layer) const;
  const TensorInfo& hf_tensor(TensorRole role, int layer) const;
  ModelConfig cfg_;
  const ArchSpec* arch_ = nullptr;
  std::string path_, hf_dir_, llama2c_file_, onnx_file_;
  std::unique_ptr<TensorStore> store_;     // HF
  std::shared_ptr<ModelWeights> weights_;  // llama2.c
  std::shared_ptr<gguf::Reader> gguf_;     // GGUF
};

}  // namespace lowbit
