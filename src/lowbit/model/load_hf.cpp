// Hugging Face folder -> ModelWeights, driven by the architecture table (arch.h): for every
// tensor role the config says the family has, the tensor is found under its name (or the name
// without the base-model prefix), checked, and placed — fused tensors split into their parts,
// Conv1D weights transposed, quantized linears repacked or dequantized.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "lowbit/formats/checkpoint_layout.h"
#include "lowbit/formats/quantized_config.h"
#include "lowbit/io/json_read.h"
#include "lowbit/io/limits.h"
#include "lowbit/io/safetensors.h"
#include "lowbit/io/tensor_convert.h"
#include "lowbit/kernels/packed_weight.h"
#include "lowbit/model/arch.h"
#include "lowbit/model/hold_quantized.h"
#include "lowbit/model/load.h"
#include "lowbit/model/onnx_checkpoint.h"
#include "lowbit/util/buffer.h"
#include "lowbit/util/error.h"
#include "lowbit/util/file.h"

namespace lowbit {

namespace {

using enum TensorRole;

std::string shape_str(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ","));
}

// Finds the tensor of `spec` (or its name without the architecture's base-model prefix).
const TensorInfo* find_tensor(const TensorStore& store, const ArchSpec& arch,
                              const std::string& name) {
  if (const TensorInfo* t = store.find(name)) return t;
  const std::string prefix = arch.base_prefix;
  if (!prefix.empty() && name.rfind(prefix, 0) == 0) return store.find(name.substr(prefix.size()));
  return nullptr;
}

// An owned fp32 copy of rows `rows` of the [rows_total, cols] matrix m.
// Drops the pages of a memory-mapped tensor from the resident set once the model holds its own
// copy (converted, repacked): without it a W4 model would keep the file's pages (the stored codes)
// resident beside the repacked ones. Harmless if something still reads it: the pages come back
// from the file.
void release_mapped(const TensorStore& store, const TensorInfo& t) {
  for (const auto& f : store.files()) {
    if (f->path() == t.file) f->mapped()->release(t.data, t.nbytes);
  }
}

const float* take_rows(const float* m, int cols, const std::vector<int>& rows, ModelWeights* w) {
  std::shared_ptr<float[]> buf = alloc_floats(rows.size() * static_cast<size_t>(cols));
  for (size_t i = 0; i < rows.size(); ++i) {
    std::memcpy(buf.get() + i * cols, m + static_cast<size_t>(rows[i]) * cols,
                sizeof(float) * cols);
  }
  w->keep_alive.push_back(buf);
  return buf.get();
}

// fp32 view of a stored tensor: F32 (4-byte aligned) points into the mapping, everything else
// is converted into a buffer kept alive by `w`; `transposed` ([in, out] on disk) is turned into
// [out, in].
const float* as_f32(const TensorInfo& t, ModelWeights* w, bool use_mmap, bool transposed) {
  const size_t n = static_cast<size_t>(t.numel());
  if (!transposed && use_mmap && t.dtype == DType::F32 &&
      reinterpret_cast<uintptr_t>(t.data) % alignof(float) == 0) {
    return reinterpret_cast<const float*>(t.data);
  }
  std::shared_ptr<float[]> buf = alloc_floats(n);
  tensor_to_f32(t, buf.get());
  if (transposed) {
    const int64_t rows = t.shape[0], cols = t.shape[1];  // stored [in, out]
    std::shared_ptr<float[]> tr = alloc_floats(n);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) tr[static_cast<size_t>(c * rows + r)] = buf[r * cols + c];
    }
    buf = tr;
  }
  w->keep_alive.push_back(buf);
  return buf.get();
}

// Holds an fp32 [out, in] linear weight in `lin` as fp32, or as a bf16 packed copy.
void set_weight(Linear* lin, const float* p, int out, int in, bool bf16, ModelWeights* w) {
  lin->out = out;
  lin->in = in;
  if (bf16) {
    auto packed = std::make_shared<kernels::PackedWeight>(kernels::pack_bf16(p, out, in));
    lin->packed = packed.get();
    lin->w = nullptr;
    w->keep_alive.push_back(packed);
  } else {
    lin->w = p;
  }
}

// A static activation parameter: one finite float in <prefix><suffix>.
float act_param(const TensorStore& store, const std::string& name, const std::string& where) {
  const TensorInfo* t = store.find(name);
  if (t == nullptr) fail(where, "missing tensor {} (static activation quantization)", name);
  if (t->numel() != 1) fail(t->file, "{} must hold one value, has {}", name, t->numel());
  float v = 0.0f;
  tensor_to_f32(*t, &v);
  return v;
}

// The module's activation scheme (W8A8, W4A8), with a static scheme's stored scale.
ActScheme module_act(ActScheme act, const TensorStore& store, const std::string& prefix,
                     const std::string& where) {
  if (act.quantized && act.granularity == ActGranularity::kTensor) {
    act.scale = act_param(store, prefix + ".input_scale", where);
    if (!act.sym) act.zero = act_param(store, prefix + ".input_zero_point", where);
  }
  return act;
}

// A quantized linear module (GPTQ, AWQ, lowbit or compressed-tensors layout), placed into its
// linear(s); false when the module is stored in floating point.
bool load_quantized(const QuantizedCheckpointConfig& qc, const TensorStore& store,
                    const ArchSpec& arch, const TensorSpec& spec, const std::string& weight_name,
                    const RuntimeOptions& rt, ModelWeights* w, int layer) {
  const std::string prefix = weight_name.substr(0, weight_name.size() - 7);  // ".weight"
  const std::string marker = qc.quantized_suffix();  // ".qweight" (".weight_scale")
  const TensorInfo* qweight = find_tensor(store, arch, prefix + marker);
  // A module saved without the base-model prefix keeps it out of its tensor names.
  std::string stored_prefix = prefix;
  if (qweight != nullptr && store.find(prefix + marker) == nullptr) {
    stored_prefix = prefix.substr(std::string(arch.base_prefix).size());
  }
  const ModuleStorage ms = qc.module(stored_prefix, qweight != nullptr);
  if (ms.layout == "fp") return false;
  const std::string where = qweight ? qweight->file : store.dir();
  if (qweight == nullptr) fail(where, "missing tensor {}{}", prefix, marker);
  const TensorLookup lookup = [&](const std::string& n) { return store.find(n); };
  QuantizedWeight q = read_quantized_module(ms, stored_prefix, lookup);
  const std::vector<int64_t> shape = role_shape(spec.role, w->cfg);  // [out, in], not transposed
  if (q.out != shape[0] || q.in != shape[1]) {
    fail(where, "quantized {} holds a [{}, {}] weight, expected {}", prefix, q.out, q.in,
         shape_str(shape));
  }
  // q owns its codes and scales: the stored ones are not read again.
  for (const char* part :
       {".qweight", ".qzeros", ".scales", ".zeros", ".g_idx", ".weight", ".weight_scale"}) {
    if (const TensorInfo* t = store.find(stored_prefix + part); t != nullptr)
      release_mapped(store, *t);
  }
  std::optional<ActScheme> act;
  if (ms.act) act = module_act(*ms.act, store, stored_prefix, where);
  const std::string what = where + ": " + stored_prefix;
  const std::vector<Linear*> lins = linears_of(spec.role, w, layer);
  const float* in_scale = nullptr;
  if (ms.smooth_scale) {  // SmoothQuant --no-fold: the input's divisor
    const TensorInfo* t = store.find(stored_prefix + ".smooth_scale");
    if (t == nullptr) fail(where, "missing tensor {}.smooth_scale", stored_prefix);
    if (t->numel() != q.in)
      fail(t->file, "{}.smooth_scale has {} values, expected {}", stored_prefix, t->numel(), q.in);
    std::shared_ptr<float[]> buf = alloc_floats(static_cast<size_t>(q.in));
    tensor_to_f32(*t, buf.get());
    for (int k = 0; k < q.in; ++k) {
      if (!(std::isfinite(buf[k]) && buf[k] > 0.0f))
        fail(t->file, "{}.smooth_scale[{}] = {} is not a positive finite scale", stored_prefix, k,
             buf[k]);
    }
    w->keep_alive.push_back(buf);
    in_scale = buf.get();
  }
  if (!is_fused(spec.role)) {
    set_quantized(lins[0], q, rt.repack, rt.keep_quantized, w, act, what);
  } else {
    const std::vector<std::vector<int>> parts = fused_rows(spec.role, w->cfg);
    for (size_t p = 0; p < lins.size(); ++p) {
      set_quantized(lins[p], q.select_rows(parts[p]), rt.repack, rt.keep_quantized, w, act, what);
    }
  }
  for (Linear* l : lins) l->in_scale = in_scale;
  return true;
}

// A linear whose quantized weight was read from the graph (ONNX MatMulNBits) under one of the
// role's names (with or without the base-model prefix); false when there is none.
bool place_prequantized(const std::map<std::string, QuantizedWeight>& pre, const ArchSpec& arch,
                        TensorRole role, int layer, const RuntimeOptions& rt, ModelWeights* w,
                        const std::string& where) {
  if (pre.empty()) return false;
  for (const TensorSpec& s : arch.tensors) {
    if (s.role != role) continue;
    const std::string nm = tensor_name(s, layer);
    auto it = pre.find(nm);
    const std::string prefix = arch.base_prefix;
    if (it == pre.end() && !prefix.empty() && nm.rfind(prefix, 0) == 0)
      it = pre.find(nm.substr(prefix.size()));
    if (it == pre.end()) continue;
    const QuantizedWeight& q = it->second;
    const std::vector<int64_t> shape = role_shape(role, w->cfg);
    if (q.out != shape[0] || q.in != shape[1]) {
      fail(where, "quantized {} holds a [{}, {}] weight, expected {}", nm, q.out, q.in,
           shape_str(shape));
    }
    const std::string what = where + ": " + nm;
    const std::vector<Linear*> lins = linears_of(role, w, layer);
    if (!is_fused(role)) {
      set_quantized(lins[0], q, rt.repack, rt.keep_quantized, w, std::nullopt, what);
    } else {
      const std::vector<std::vector<int>> parts = fused_rows(role, w->cfg);
      for (size_t p = 0; p < lins.size(); ++p)
        set_quantized(lins[p], q.select_rows(parts[p]), rt.repack, rt.keep_quantized, w,
                      std::nullopt, what);
    }
    return true;
  }
  return false;
}

// Places one floating-point tensor.
void place(const TensorSpec& spec, const TensorInfo& t, ModelWeights* w, int layer,
           const RuntimeOptions& rt) {
  const TensorRole r = spec.role;
  const std::vector<int64_t> shape = role_shape(r, w->cfg);
  switch (r) {
    case kTokEmbeddings:
      w->tok_embeddings = as_f32(t, w, rt.use_mmap, false);
      return;
    case kPosEmbeddings:
      w->pos_embeddings = as_f32(t, w, rt.use_mmap, false);
      return;
    default:
      break;
  }
  if (Norm* n = norm_of(r, w, layer)) {
    (is_norm_bias(r) ? n->b : n->w) = as_f32(t, w, rt.use_mmap, false);
    return;
  }
  const std::vector<Linear*> lins = linears_of(r, w, layer);
  const bool weight = is_linear_weight(r);
  if (r == kLmHead && w->cfg.norm_head) {
    // Baichuan2's NormHead: the rows used are the normalized stored rows (an owned copy).
    std::shared_ptr<float[]> buf = alloc_floats(static_cast<size_t>(t.numel()));
    tensor_to_f32(t, buf.get());
    l2_normalize_rows(buf.get(), shape[0], shape[1]);
    w->keep_alive.push_back(buf);
    set_weight(lins[0], buf.get(), static_cast<int>(shape[0]), static_cast<int>(shape[1]),
               rt.bf16_linears, w);
    return;
  }
  if (weight && rt.bf16_linears && !is_fused(r) && !spec.transposed) {
    // Held in bf16: packed straight from the mapping (bf16 files) or from a temporary fp32 copy,
    // never keeping an fp32 copy of the weight alive.
    std::shared_ptr<kernels::PackedWeight> packed;
    const int out = static_cast<int>(shape[0]), in = static_cast<int>(shape[1]);
    if (t.dtype == DType::BF16) {
      packed = std::make_shared<kernels::PackedWeight>(kernels::pack_bf16_raw(t.data, out, in));
    } else {
      std::vector<float> f(static_cast<size_t>(t.numel()));
      tensor_to_f32(t, f.data());
      packed = std::make_shared<kernels::PackedWeight>(kernels::pack_bf16(f.data(), out, in));
    }
    *lins[0] = {nullptr, lins[0]->bias, out, in, packed.get()};
    w->keep_alive.push_back(packed);
    return;
  }
  const float* p = as_f32(t, w, rt.use_mmap, spec.transposed);
  if (!is_fused(r)) {
    if (weight) {
      set_weight(lins[0], p, static_cast<int>(shape[0]), static_cast<int>(shape[1]),
                 rt.bf16_linears, w);
    } else {
      lins[0]->bias = p;
    }
    return;
  }
  const std::vector<std::vector<int>> parts = fused_rows(r, w->cfg);
  const int cols = weight ? static_cast<int>(shape[1]) : 1;
  for (size_t i = 0; i < lins.size(); ++i) {
    const float* part = take_rows(p, cols, parts[i], w);
    if (weight) {
      set_weight(lins[i], part, static_cast<int>(parts[i].size()), cols, rt.bf16_linears, w);
    } else {
      lins[i]->bias = part;
    }
  }
}

}  // namespace

void set_quantized(Linear* lin, const QuantizedWeight& q, bool repack, bool keep, ModelWeights* w,
                   const std::optional<ActScheme>& act, const std::string& where) {
  lin->out = q.out;
  lin->in = q.in;
  if (keep) {
    auto kept = std::make_shared<QuantizedWeight>(q);
    lin->quant = kept.get();
    w->keep_alive.push_back(kept);
  }
  if (act && act->quantized && !(repack && kernels::can_pack(q)))
    fail(where, "int8 activations need the quantized kernels (not --dequantize)");
  if (repack && kernels::can_pack(q)) {
    auto p = std::make_shared<kernels::PackedWeight>(kernels::pack_quantized(q));
    if (act) kernels::set_act_scheme(*p, *act, where);
    lin->packed = p.get();
    lin->w = nullptr;
    w->keep_alive.push_back(p);
    return;
  }
  const std::vector<float> deq = q.dequantize();
  std::shared_ptr<float[]> buf = alloc_floats(deq.size());
  std::copy(deq.begin(), deq.end(), buf.get());
  w->keep_alive.push_back(buf);
  lin->w = buf.get();
  lin->packed = nullptr;
}

std::shared_ptr<ModelWeights> load_hf_weights(const std::string& dir, bool use_mmap) {
  RuntimeOptions rt;
  rt.use_mmap = use_mmap;
  return load_hf_weights(dir, rt);
}

namespace {

// The loader over any store of checkpoint-named tensors (a safetensors folder, an ONNX graph):
// `prequantized` ("<module>.weight" -> weight) holds linears whose codes were read elsewhere
// (ONNX MatMulNBits).
// `cfg`: config_path parsed (before the tensors are opened, so that its errors come first).
std::shared_ptr<ModelWeights> load_store_weights(
    const std::string& config_path, const ModelConfig& cfg, const TensorStore& store,
    const std::map<std::string, QuantizedWeight>& prequantized, const RuntimeOptions& rt) {
  const std::string dir = store.dir();
  auto w = std::make_shared<ModelWeights>();
  w->cfg = cfg;
  const ArchSpec& arch = *find_arch(w->cfg.architecture);
  if (store.owner()) w->keep_alive.push_back(store.owner());
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

  // Each role the config implies, once: the first of its names that the checkpoint holds.
  std::vector<TensorRole> done;
  for (const TensorSpec& first : arch.tensors) {
    const TensorRole role = first.role;
    if (!tensor_present(role, w->cfg) || std::find(done.begin(), done.end(), role) != done.end()) {
      continue;
    }
    done.push_back(role);
    const int n = is_per_layer(role) ? w->cfg.n_layers : 1;
    for (int layer = 0; layer < n; ++layer) {
      const TensorSpec* spec = &first;
      const TensorInfo* t = nullptr;
      std::string name = tensor_name(first, layer);
      if (is_linear_weight(role) &&
          place_prequantized(prequantized, arch, role, layer, rt, w.get(), dir)) {
        continue;
      }
      for (const TensorSpec& s : arch.tensors) {
        if (s.role != role) continue;
        const std::string nm = tensor_name(s, layer);
        if (qc && is_linear_weight(role) &&
            find_tensor(store, arch, nm.substr(0, nm.size() - 7) + qc->quantized_suffix()) !=
                nullptr) {
          spec = &s;
          name = nm;
          break;
        }
        if ((t = find_tensor(store, arch, nm)) != nullptr) {
          spec = &s;
          name = nm;
          break;
        }
      }
      if (qc && is_linear_weight(role) &&
          load_quantized(*qc, store, arch, *spec, name, rt, w.get(), layer)) {
        continue;
      }
      if (t == nullptr) {
        const std::string where = store.files().size() == 1 ? store.files()[0]->path() : dir;
        fail(where, "missing tensor {}", name);
      }
      const std::vector<int64_t> shape = expected_shape(*spec, w->cfg);
      if (t->shape != shape) {
        fail(t->file, "tensor {} has shape {}, expected {}", t->name, shape_str(t->shape),
             shape_str(shape));
      }
      check_finite(*t);
      place(*spec, *t, w.get(), layer, rt);
      // Only fp32 tensors read in place (mmap) are still pointed into; the others were copied.
      if (!(rt.use_mmap && t->dtype == DType::F32 && !spec->transposed)) release_mapped(store, *t);
    }
  }
  if (w->cfg.tied_embeddings) {
    const float* bias = w->lm_head.bias;
    w->lm_head = {w->tok_embeddings, bias, w->cfg.vocab_size, w->cfg.embed_dim()};
    if (rt.bf16_linears) {
      set_weight(&w->lm_head, w->tok_embeddings, w->cfg.vocab_size, w->cfg.embed_dim(), true,
                 w.get());
    }
  }
  return w;
}

}  // namespace

std::shared_ptr<ModelWeights> load_hf_weights(const std::string& dir, const RuntimeOptions& rt) {
  namespace fs = std::filesystem;
  const std::string config_path = (fs::path(dir) / "config.json").string();
  if (!path_exists(config_path)) fail(dir, "no config.json (not a Hugging Face model folder)");
  const ModelConfig cfg = load_hf_config(config_path);
  const TensorStore store = TensorStore::open_dir(dir);
  return load_store_weights(config_path, cfg, store, {}, rt);
}

std::shared_ptr<ModelWeights> load_onnx_weights(const std::string& onnx_path,
                                                const RuntimeOptions& rt) {
  namespace fs = std::filesystem;
  const fs::path dir =
      fs::path(onnx_path).parent_path().empty() ? fs::path(".") : fs::path(onnx_path).parent_path();
  const std::string config_path = (dir / "config.json").string();
  if (!path_exists(config_path)) {
    fail(onnx_path,
         "no config.json beside it (lowbit reads ONNX decoders with their Hugging Face "
         "config.json, as optimum exports them)");
  }
  const ModelConfig cfg = load_hf_config(config_path);
  const OnnxCheckpoint ck = read_onnx_checkpoint(OnnxModel::open(onnx_path));
  return load_store_weights(config_path, cfg, ck.store, ck.quantized, rt);
}

}  // namespace lowbit
