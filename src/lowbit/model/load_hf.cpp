// Hugging Face folder -> ModelWeights, driven by the architecture table (arch.h).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>

#include "lowbit/io/safetensors.h"
#include "lowbit/model/arch.h"
#include "lowbit/model/load.h"
#include "lowbit/util/buffer.h"
#include "lowbit/util/error.h"
#include "lowbit/util/half.h"

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
  const uint8_t* src = t.data;
  const int64_t chunk = int64_t{1} << 13;
  const int64_t n_chunks = (static_cast<int64_t>(n) + chunk - 1) / chunk;
  switch (t.dtype) {
    case DType::F32:  // misaligned, or not mapped: copy
      std::memcpy(dst, src, n * sizeof(float));
      break;
    case DType::BF16:
    case DType::F16: {
      const bool bf = t.dtype == DType::BF16;
#pragma omp parallel for schedule(static)
      for (int64_t c = 0; c < n_chunks; ++c) {
        const size_t begin = static_cast<size_t>(c * chunk);
        const size_t len = std::min(static_cast<size_t>(chunk), n - begin);
        // The source may be 2-byte misaligned inside the file; copy through a local buffer.
        uint16_t tmp[1 << 13];
        std::memcpy(tmp, src + begin * 2, len * 2);
        if (bf) {
          bf16_to_f32_n(tmp, dst + begin, len);
        } else {
          f16_to_f32_n(tmp, dst + begin, len);
        }
      }
      break;
    }
    default:
      fail(t.file, "tensor {} has dtype {}; only F32, BF16 and F16 are supported", t.name,
           dtype_name(t.dtype));
  }
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

}  // namespace

std::shared_ptr<ModelWeights> load_hf_weights(const std::string& dir, bool use_mmap) {
  namespace fs = std::filesystem;
  const std::string config_path = (fs::path(dir) / "config.json").string();
  if (!fs::exists(config_path)) fail(dir, "no config.json (not a Hugging Face model folder)");
  auto w = std::make_shared<ModelWeights>();
  w->cfg = load_hf_config(config_path);
  const ArchSpec* arch = find_arch(w->cfg.architecture);
  TensorStore store = TensorStore::open_dir(dir);
  for (const auto& f : store.files()) w->keep_alive.push_back(f);
  w->layers.resize(static_cast<size_t>(w->cfg.n_layers));

  for (const TensorSpec& spec : arch->tensors) {
    if (!tensor_present(spec, w->cfg)) continue;
    const std::vector<int64_t> shape = expected_shape(spec, w->cfg);
    const int n = spec.per_layer ? w->cfg.n_layers : 1;
    for (int layer = 0; layer < n; ++layer) {
      const std::string name = tensor_name(spec, layer);
      const TensorInfo* t = store.find(name);
      if (t == nullptr) {
        const std::string where = store.files().size() == 1 ? store.files()[0]->path() : dir;
        fail(where, "missing tensor {}", name);
      }
      if (t->shape != shape) {
        fail(t->file, "tensor {} has shape {}, expected {}", name, shape_str(t->shape),
             shape_str(shape));
      }
      place(spec, shape, as_f32(*t, w.get(), use_mmap), layer, w.get());
    }
  }
  if (w->cfg.tied_embeddings) {
    w->lm_head = {w->tok_embeddings, nullptr, w->cfg.vocab_size, w->cfg.dim};
  }
  return w;
}

}  // namespace lowbit
