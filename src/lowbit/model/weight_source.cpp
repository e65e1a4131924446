#include "lowbit/model/weight_source.h"

#include <cstring>
#include <filesystem>

#include "lowbit/io/tensor_convert.h"
#include "lowbit/model/load.h"
#include "lowbit/util/error.h"

namespace lowbit {

namespace {

// The fp32 array of a role in llama2.c ModelWeights.
const float* llama2c_array(const ModelWeights& w, TensorRole role, int layer) {
  const LayerWeights* l = layer >= 0 ? &w.layers[static_cast<size_t>(layer)] : nullptr;
  switch (role) {
    case TensorRole::kTokEmbeddings:
      return w.tok_embeddings;
    case TensorRole::kFinalNorm:
      return w.final_norm;
    case TensorRole::kLmHead:
      return w.lm_head.w;
    case TensorRole::kAttnNorm:
      return l->attn_norm;
    case TensorRole::kFfnNorm:
      return l->ffn_norm;
    case TensorRole::kWq:
      return l->wq.w;
    case TensorRole::kWk:
      return l->wk.w;
    case TensorRole::kWv:
      return l->wv.w;
    case TensorRole::kWo:
      return l->wo.w;
    case TensorRole::kBq:
      return l->wq.bias;
    case TensorRole::kBk:
      return l->wk.bias;
    case TensorRole::kBv:
      return l->wv.bias;
    case TensorRole::kWGate:
      return l->w_gate.w;
    case TensorRole::kWUp:
      return l->w_up.w;
    case TensorRole::kWDown:
      return l->w_down.w;
  }
  return nullptr;
}

}  // namespace

std::unique_ptr<WeightSource> WeightSource::open(const std::string& path) {
  auto src = std::unique_ptr<WeightSource>(new WeightSource());
  const ModelLocation loc = locate_model(path, "", false);
  src->path_ = loc.weights;
  if (loc.hf) {
    src->hf_dir_ = loc.weights;
    src->cfg_ = load_hf_config((std::filesystem::path(loc.weights) / "config.json").string());
    if (!src->cfg_.quant_method.empty()) {
      fail(path, "already quantized (quant_method {}); quantize the floating-point model",
           src->cfg_.quant_method);
    }
    src->store_ = std::make_unique<TensorStore>(TensorStore::open_dir(loc.weights));
  } else {
    src->llama2c_file_ = loc.weights;
    src->weights_ = load_llama2c_weights(loc.weights, /*use_mmap=*/true);
    src->cfg_ = src->weights_->cfg;
  }
  src->arch_ = find_arch(src->cfg_.architecture);
  if (src->arch_ == nullptr) fail(path, "unsupported architecture {}", src->cfg_.architecture);
  return src;
}

const TensorSpec& WeightSource::spec(TensorRole role) const {
  for (const TensorSpec& s : arch_->tensors) {
    if (s.role == role) return s;
  }
  fail(path_, "architecture {} has no tensor of this role", arch_->architecture);
}

bool WeightSource::has(TensorRole role) const {
  for (const TensorSpec& s : arch_->tensors) {
    if (s.role == role) return tensor_present(s, cfg_);
  }
  return false;
}

std::string WeightSource::name(TensorRole role, int layer) const {
  return tensor_name(spec(role), layer);
}

std::vector<int64_t> WeightSource::shape(TensorRole role) const {
  return expected_shape(spec(role), cfg_);
}

const TensorInfo& WeightSource::hf_tensor(TensorRole role, int layer) const {
  const std::string n = name(role, layer);
  const TensorInfo* t = store_->find(n);
  if (t == nullptr) fail(path_, "missing tensor {}", n);
  if (t->shape != shape(role)) {
    fail(t->file, "tensor {} has shape [{}], expected [{}]", n, fmt::join(t->shape, ","),
         fmt::join(shape(role), ","));
  }
  return *t;
}

std::vector<float> WeightSource::read(TensorRole role, int layer) const {
  int64_t numel = 1;
  for (int64_t d : shape(role)) numel *= d;
  std::vector<float> out(static_cast<size_t>(numel));
  if (weights_ != nullptr) {
    const float* p = llama2c_array(*weights_, role, layer);
    if (p == nullptr) fail(path_, "missing tensor {}", name(role, layer));
    std::memcpy(out.data(), p, out.size() * sizeof(float));
  } else {
    tensor_to_f32(hf_tensor(role, layer), out.data());
    check_finite(path_, name(role, layer), out.data(), out.size());
  }
  return out;
}

DType WeightSource::stored_dtype(TensorRole role, int layer) const {
  return weights_ != nullptr ? DType::F32 : hf_tensor(role, layer).dtype;
}

void WeightSource::release(TensorRole role, int layer) const {
  if (weights_ != nullptr) return;
  const TensorInfo& t = hf_tensor(role, layer);
  for (const auto& f : store_->files()) {
    if (f->path() == t.file) f->mapped()->release(t.data, t.nbytes);
  }
}

}  // namespace lowbit
