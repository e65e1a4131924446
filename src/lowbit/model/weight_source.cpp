#include "lowbit/model/weight_source.h"

#include <cstring>
#include <filesystem>

#include "lowbit/io/tensor_convert.h"
#include "lowbit/model/gguf_model.h"
#include "lowbit/model/load.h"
#include "lowbit/model/onnx_checkpoint.h"
#include "lowbit/util/error.h"

namespace lowbit {

namespace {

using enum TensorRole;

// The fp32 array of a role in llama2.c ModelWeights (Llama layout: no fused or transposed tensors).
const float* llama2c_array(const ModelWeights& w, TensorRole role, int layer) {
  const LayerWeights* l = layer >= 0 ? &w.layers[static_cast<size_t>(layer)] : nullptr;
  switch (role) {
    case kTokEmbeddings:
      return w.tok_embeddings;
    case kFinalNorm:
      return w.final_norm.w;
    case kLmHead:
      return w.lm_head.w;
    case kAttnNorm:
      return l->attn_norm.w;
    case kFfnNorm:
      return l->ffn_norm.w;
    case kWq:
      return l->wq.w;
    case kWk:
      return l->wk.w;
    case kWv:
      return l->wv.w;
    case kWo:
      return l->wo.w;
    case kWGate:
      return l->w_gate.w;
    case kWUp:
      return l->w_up.w;
    case kWDown:
      return l->w_down.w;
    default:
      return nullptr;
  }
}

}  // namespace

std::unique_ptr<WeightSource> WeightSource::open(const std::string& path) {
  auto src = std::unique_ptr<WeightSource>(new WeightSource());
  const ModelLocation loc = locate_model(path, "", false);
  src->path_ = loc.weights;
  if (loc.gguf) {
    src->gguf_ = std::make_shared<gguf::Reader>(gguf::Reader::open(loc.weights));
    for (const gguf::Tensor& t : src->gguf_->tensors()) {
      if (gguf::is_quantized(t.type)) {
        fail(path, "already quantized ({} tensor {}); quantize the f32/f16/bf16 GGUF file",
             gguf::type_name(t.type), t.name);
      }
    }
    src->cfg_ = gguf_model_config(*src->gguf_);
  } else if (loc.hf) {
    src->hf_dir_ = loc.weights;
    src->cfg_ = load_hf_config((std::filesystem::path(loc.weights) / "config.json").string());
    if (!src->cfg_.quant_method.empty()) {
      fail(path, "already quantized (quant_method {}); quantize the floating-point model",
           src->cfg_.quant_method);
    }
    if (!loc.onnx.empty()) {
      OnnxCheckpoint ck = read_onnx_checkpoint(OnnxModel::open(loc.onnx));
      if (!ck.quantized.empty()) {
        fail(loc.onnx,
             "already quantized ({} MatMulNBits linears); quantize the floating-point model",
             ck.quantized.size());
      }
      src->onnx_file_ = loc.onnx;
      src->store_ = std::make_unique<TensorStore>(std::move(ck.store));
    } else {
      src->store_ = std::make_unique<TensorStore>(TensorStore::open_dir(loc.weights));
    }
  } else {
    src->llama2c_file_ = loc.weights;
    src->weights_ = load_llama2c_weights(loc.weights, /*use_mmap=*/true);
    src->cfg_ = src->weights_->cfg;
  }
  src->arch_ = find_arch(src->cfg_.architecture);
  if (src->arch_ == nullptr) fail(path, "unsupported architecture {}", src->cfg_.architecture);
  return src;
}

const TensorSpec& WeightSource::spec(TensorRole role, int layer) const {
  const TensorSpec* first = nullptr;
  for (const TensorSpec& s : arch_->tensors) {
    if (s.role != role) continue;
    if (first == nullptr) first = &s;
    if (store_ == nullptr) break;
    const std::string n = tensor_name(s, layer);
    const std::string prefix = arch_->base_prefix;
    if (store_->find(n) != nullptr ||
        (n.rfind(prefix, 0) == 0 && store_->find(n.substr(prefix.size())) != nullptr)) {
      return s;
    }
  }
  if (first == nullptr)
    fail(path_, "architecture {} has no tensor of this role", arch_->architecture);
  return *first;
}

std::string WeightSource::name(TensorRole role, int layer) const {
  const std::string n = tensor_name(spec(role, layer), layer);
  const std::string prefix = arch_->base_prefix;
  if (store_ != nullptr && store_->find(n) == nullptr && n.rfind(prefix, 0) == 0 &&
      store_->find(n.substr(prefix.size())) != nullptr) {
    return n.substr(prefix.size());
  }
  return n;
}

bool WeightSource::transposed(TensorRole role) const {
  return gguf_ == nullptr && spec(role, 0).transposed;
}

const TensorInfo& WeightSource::hf_tensor(TensorRole role, int layer) const {
  const std::string n = name(role, layer);
  const TensorInfo* t = store_->find(n);
  if (t == nullptr) fail(path_, "missing tensor {}", n);
  const std::vector<int64_t> want = expected_shape(spec(role, layer), cfg_);
  if (t->shape != want) {
    fail(t->file, "tensor {} has shape [{}], expected [{}]", n, fmt::join(t->shape, ","),
         fmt::join(want, ","));
  }
  return *t;
}

std::vector<float> WeightSource::read(TensorRole role, int layer) const {
  int64_t numel = 1;
  for (int64_t d : role_shape(role, cfg_)) numel *= d;
  std::vector<float> out(static_cast<size_t>(numel));
  if (gguf_ != nullptr) return read_gguf_role(*gguf_, cfg_, role, layer);
  if (weights_ != nullptr) {
    const float* p = llama2c_array(*weights_, role, layer);
    if (p == nullptr) fail(path_, "missing tensor {}", name(role, layer));
    std::memcpy(out.data(), p, out.size() * sizeof(float));
    return out;
  }
  const TensorInfo& t = hf_tensor(role, layer);
  tensor_to_f32(t, out.data());
  check_finite(path_, name(role, layer), out.data(), out.size());
  if (role == kLmHead && cfg_.norm_head) l2_normalize_rows(out.data(), t.shape[0], t.shape[1]);
  if (transposed(role) && t.shape.size() == 2) {  // stored [in, out] -> [out, in]
    std::vector<float> tr(out.size());
    const int64_t rows = t.shape[0], cols = t.shape[1];
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) tr[static_cast<size_t>(c * rows + r)] = out[r * cols + c];
    }
    out.swap(tr);
  }
  return out;
}

DType WeightSource::stored_dtype(TensorRole role, int layer) const {
  if (gguf_ != nullptr) {
    const gguf::GgmlType t = gguf_role_tensor(*gguf_, cfg_, role, layer).type;
    return t == gguf::GgmlType::kF16    ? DType::F16
           : t == gguf::GgmlType::kBF16 ? DType::BF16
                                        : DType::F32;
  }
  return weights_ != nullptr ? DType::F32 : hf_tensor(role, layer).dtype;
}

void WeightSource::release(TensorRole role, int layer) const {
  if (gguf_ != nullptr) {
    const gguf::Tensor& t = gguf_role_tensor(*gguf_, cfg_, role, layer);
    gguf_->file()->release(t.data, static_cast<size_t>(t.bytes));
    return;
  }
  if (weights_ != nullptr) return;
  const TensorInfo& t = hf_tensor(role, layer);
  for (const auto& f : store_->files()) {
    if (f->path() == t.file) f->mapped()->release(t.data, t.nbytes);
  }
}

}  // namespace lowbit
