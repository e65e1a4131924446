// Hugging Face folder -> ModelWeights, driven by the architecture table (arch.h).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "lowbit/io/json_read.h"
#include "lowbit/io/limits.h"
#include "lowbit/io/safetensors.h"
#include "lowbit/io/tensor_convert.h"
#include "lowbit/kernels/packed_weight.h"
#include "lowbit/model/arch.h"
#include "lowbit/model/load.h"
#include "lowbit/quant/checkpoint_layout.h"
#include "lowbit/quant/quantized_config.h"
#include "lowbit/util/buffer.h"
#include "lowbit/util/error.h"
#include "lowbit/util/file.h"

namespace lowbit {

namespace {

std::string shape_str(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ","));
}

// fp32 view of a stored tensor: F32 (4-byte aligned) points into the mapping, everything else
// is converted into a buffer kept alive by `w`.
const float* as_f32(const TensorInfo& t, ModelWeights* w, bool use_mmap) {
  const size_t n = static_cast<size_t>(t.numel());
  if (use_mmap && t.dtype == DType::F32 &&
      reinterpret_cast<uintptr_t>(t.data) % alignof(float) == 0) {
    return reinterpret_cast<const float*>(t.data);
  }
  std::shared_ptr<float[]> buf = alloc_floats(n);
  float* dst = buf.get();
  tensor_to_f32(t, dst);
  w->keep_alive.push_back(buf);
  return dst;
}

Linear* linear_for(TensorRole role, LayerWeights& l) {
  switch (role) {
    case TensorRole::kWq:
    case TensorRole::kBq:
      return &l.wq;
    case TensorRole::kWk:
    case TensorRole::kBk:
      return &l.wk;
    case TensorRole::kWv:
    case TensorRole::kBv:
      return &l.wv;
    case TensorRole::kWo:
      return &l.wo;
    case TensorRole::kWGate:
      return &l.w_gate;
    case TensorRole::kWUp:
      return &l.w_up;
    case TensorRole::kWDown:
      return &l.w_down;
    default:
      return nullptr;
  }
}

bool is_bias(TensorRole r) {
  return r == TensorRole::kBq || r == TensorRole::kBk || r == TensorRole::kBv;
}

void place(const TensorSpec& spec, const std::vector<int64_t>& shape, const float* p, int layer,
           ModelWeights* w) {
  switch (spec.role) {
    case TensorRole::kTokEmbeddings:
      w->tok_embeddings = p;
      return;
    case TensorRole::kFinalNorm:
      w->final_norm = p;
      return;
    case TensorRole::kLmHead:
      w->lm_head = {p, nullptr, static_cast<int>(shape[0]), static_cast<int>(shape[1])};
      return;
    case TensorRole::kAttnNorm:
      w->layers[layer].attn_norm = p;
      return;
    case TensorRole::kFfnNorm:
      w->layers[layer].ffn_norm = p;
      return;
    default:
      break;
  }
  Linear* lin = linear_for(spec.role, w->layers[layer]);
  if (is_bias(spec.role)) {
    lin->bias = p;
  } else {
    *lin = {p, lin->bias, static_cast<int>(shape[0]), static_cast<int>(shape[1])};
  }
}

// A quantized linear (GPTQ or lowbit layout) repacked into the kernels' compute layout (when
// `repack` and the kernels can run it) or dequantized to fp32; false when the module is stored in
// floating point.
bool load_quantized(const QuantizedCheckpointConfig& qc, const TensorStore& store,
                    const std::string& weight_name, const std::vector<int64_t>& shape, bool repack,
                    ModelWeights* w, Linear* out) {
  const std::string prefix = weight_name.substr(0, weight_name.size() - 7);  // ".weight"
  const TensorInfo* qweight = store.find(prefix + ".qweight");
  const ModuleStorage ms = qc.module(prefix, qweight != nullptr);
  if (ms.layout == "fp") return false;
  const std::string where = qweight ? qweight->file : store.dir();
  if (qweight == nullptr) fail(where, "missing tensor {}.qweight", prefix);
  const TensorLookup lookup = [&](const std::string& n) { return store.find(n); };
  QuantizedWeight q = ms.layout == "gptq" ? from_gptq_tensors(ms.scheme, prefix, lookup,
                                                              ms.gptq_version, ms.desc_act)
                                          : from_lowbit_tensors(ms.scheme, prefix, lookup);
  if (q.out != shape[0] || q.in != shape[1]) {
    fail(where, "quantized {} holds a [{}, {}] weight, expected {}", prefix, q.out, q.in,
         shape_str(shape));
  }
  *out = {nullptr, out->bias, q.out, q.in, nullptr};
  if (repack && kernels::can_pack(q)) {
    auto p = std::make_shared<kernels::PackedWeight>(kernels::pack_quantized(q));
    out->packed = p.get();
    w->keep_alive.push_back(p);
    return true;
  }
  const std::vector<float> deq = q.dequantize();
  std::shared_ptr<float[]> buf = alloc_floats(deq.size());
  std::copy(deq.begin(), deq.end(), buf.get());
  w->keep_alive.push_back(buf);
  out->w = buf.get();
  return true;
}

// An unquantized linear weight held in bf16: copied as is from a bf16 tensor, else rounded.
void place_bf16(const TensorInfo& t, ModelWeights* w, Linear* out) {
  const int rows = static_cast<int>(t.shape[0]), cols = static_cast<int>(t.shape[1]);
  std::shared_ptr<kernels::PackedWeight> p;
  if (t.dtype == DType::BF16) {
    p = std::make_shared<kernels::PackedWeight>(kernels::pack_bf16_raw(t.data, rows, cols));
  } else {
    std::vector<float> f(static_cast<size_t>(t.numel()));
    tensor_to_f32(t, f.data());
    p = std::make_shared<kernels::PackedWeight>(kernels::pack_bf16(f.data(), rows, cols));
  }
  *out = {nullptr, out->bias, rows, cols, p.get()};
  w->keep_alive.push_back(p);
}

}  // namespace

std::shared_ptr<ModelWeights> load_hf_weights(const std::string& dir, bool use_mmap) {
  RuntimeOptions rt;
  rt.use_mmap = use_mmap;
  return load_hf_weights(dir, rt);
}

std::shared_ptr<ModelWeights> load_hf_weights(const std::string& dir, const RuntimeOptions& rt) {
  const bool use_mmap = rt.use_mmap;
  namespace fs = std::filesystem;
  const std::string config_path = (fs::path(dir) / "config.json").string();
  if (!path_exists(config_path)) fail(dir, "no config.json (not a Hugging Face model folder)");
  auto w = std::make_shared<ModelWeights>();
  w->cfg = load_hf_config(config_path);
  const ArchSpec* arch = find_arch(w->cfg.architecture);
  TensorStore store = TensorStore::open_dir(dir);
  std::optional<QuantizedCheckpointConfig> qc;
  if (!w->cfg.quant_method.empty()) {
    const auto j = read_json_file(config_path, kMaxConfigBytes, "config.json");
    if (!j.is_object() || !j.contains("quantization_config")) {
      fail(config_path, "cannot read quantization_config");
    }
    qc = QuantizedCheckpointConfig::parse(config_path, j["quantization_config"]);
  }
  for (const auto& f : store.files()) w->keep_alive.push_back(f);
  w->layers.resize(static_cast<size_t>(w->cfg.n_layers));

  for (const TensorSpec& spec : arch->tensors) {
    if (!tensor_present(spec, w->cfg)) continue;
    const std::vector<int64_t> shape = expected_shape(spec, w->cfg);
    const int n = spec.per_layer ? w->cfg.n_layers : 1;
    for (int layer = 0; layer < n; ++layer) {
      const std::string name = tensor_name(spec, layer);
      Linear* lin = !is_linear_weight(spec.role)       ? nullptr
                    : spec.role == TensorRole::kLmHead ? &w->lm_head
                                                       : linear_for(spec.role, w->layers[layer]);
      if (qc && is_linear_weight(spec.role) &&
          load_quantized(*qc, store, name, shape, rt.repack, w.get(), lin)) {
        continue;
      }
      const TensorInfo* t = store.find(name);
      if (t == nullptr) {
        const std::string where = store.files().size() == 1 ? store.files()[0]->path() : dir;
        fail(where, "missing tensor {}", name);
      }
      if (t->shape != shape) {
        fail(t->file, "tensor {} has shape {}, expected {}", name, shape_str(t->shape),
             shape_str(shape));
      }
      check_finite(*t);
      if (rt.bf16_linears && is_linear_weight(spec.role)) {
        place_bf16(*t, w.get(), lin);
      } else {
        place(spec, shape, as_f32(*t, w.get(), use_mmap), layer, w.get());
      }
    }
  }
  if (w->cfg.tied_embeddings) {
    w->lm_head = {w->tok_embeddings, nullptr, w->cfg.vocab_size, w->cfg.dim};
  }
  return w;
}

}  // namespace lowbit
