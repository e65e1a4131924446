#include "lowbit/model/onnx_checkpoint.h"

#include <cstring>

#include "lowbit/formats/matmul_nbits.h"
#include "lowbit/io/tensor_convert.h"
#include "lowbit/util/error.h"

namespace lowbit {

namespace {

// Owned bytes kept alive by the store.
struct Owned {
  std::shared_ptr<OnnxModel> model;
  std::vector<std::vector<float>> buffers;
};

// The values of an initializer as a vector of T (which must match its dtype's size).
template <typename T>
std::vector<T> values(const OnnxModel& m, const TensorInfo& t, const std::string& what) {
  if (t.nbytes % sizeof(T) != 0) fail(m.path(), "{} {} has the wrong element size", what, t.name);
  std::vector<T> v(t.nbytes / sizeof(T));
  if (!v.empty()) std::memcpy(v.data(), t.data, t.nbytes);
  return v;
}

// The MatMulNBits node `n` as lowbit's quantized weight.
QuantizedWeight read_matmul_nbits(const OnnxModel& m, const OnnxNode& n,
                                  const std::string& module) {
  const std::string where = m.path();
  auto init = [&](int i, const char* what, bool required) -> const TensorInfo* {
    if (n.inputs.size() <= static_cast<size_t>(i) || n.inputs[static_cast<size_t>(i)].empty()) {
      if (required) fail(where, "MatMulNBits {} has no {} input", module, what);
      return nullptr;
    }
    const std::string& name = n.inputs[static_cast<size_t>(i)];
    const TensorInfo* t = m.find(name);
    if (t == nullptr)
      fail(where, "MatMulNBits {}: {} {} is not an initializer", module, what, name);
    return t;
  };
  MatMulNBitsWeight w;
  w.K = n.int_attribute("K", 0);
  w.N = n.int_attribute("N", 0);
  const int64_t bits = n.int_attribute("bits", 4), block = n.int_attribute("block_size", 0);
  if (bits < 1 || bits > 8 || block < 1 || block > (1 << 20) || w.K < 1 || w.N < 1 ||
      w.K > (int64_t{1} << 31) || w.N > (int64_t{1} << 31)) {
    fail(where, "MatMulNBits {}: attributes K={} N={} bits={} block_size={} are out of range",
         module, w.K, w.N, bits, block);
  }
  w.bits = static_cast<int>(bits);
  w.block_size = static_cast<int>(block);
  const TensorInfo* b = init(1, "B", true);
  const TensorInfo* s = init(2, "scales", true);
  const TensorInfo* z = init(3, "zero_points", false);
  const TensorInfo* gi = init(4, "g_idx", false);
  if (b->dtype != DType::U8) fail(where, "MatMulNBits {}: B must be uint8", module);
  w.B = values<uint8_t>(m, *b, "B");
  w.scales.resize(static_cast<size_t>(s->numel()));
  if (s->dtype != DType::F32 && s->dtype != DType::F16)
    fail(where, "MatMulNBits {}: scales must be float or float16", module);
  tensor_to_f32(*s, w.scales.data());
  if (z != nullptr) {
    if (z->dtype != DType::U8)
      fail(where, "MatMulNBits {}: only uint8 (packed) zero points are read", module);
    w.zero_points = values<uint8_t>(m, *z, "zero_points");
  }
  if (gi != nullptr) {
    if (gi->dtype != DType::I32) fail(where, "MatMulNBits {}: g_idx must be int32", module);
    w.g_idx = values<int32_t>(m, *gi, "g_idx");
  }
  // act-order written as a Gather of A's columns: constant indices on the last axis of an
  // activation (an embedding lookup feeding the linear gathers rows of a weight by token ids).
  if (!n.inputs.empty()) {
    for (const OnnxNode& p : m.nodes()) {
      if (p.op_type != "Gather" || p.outputs.empty() || p.outputs[0] != n.inputs[0] ||
          p.inputs.size() < 2 || m.find(p.inputs[0]) != nullptr || p.int_attribute("axis", 0) == 0)
        continue;
      const TensorInfo* idx = m.find(p.inputs[1]);
      if (idx == nullptr) continue;
      if (idx->dtype != DType::I64 || idx->shape != std::vector<int64_t>{w.K})
        fail(where, "MatMulNBits {}: its input columns are gathered by {} (need int64 [{}])",
             module, p.inputs[1], w.K);
      w.perm = values<int64_t>(m, *idx, "Gather indices");
    }
  }
  w.check(where + ": MatMulNBits " + module);
  return from_matmul_nbits(where + ": MatMulNBits " + module, w);
}

}  // namespace

std::string onnx_node_module(const OnnxNode& node) {
  std::string name = node.name;
  if (name.empty() && !node.outputs.empty()) name = node.outputs[0];
  if (name.size() < 2 || name[0] != '/') return "";
  const size_t last = name.rfind('/');
  if (last == 0) return "";
  std::string module = name.substr(1, last - 1);
  for (char& c : module) {
    if (c == '/') c = '.';
  }
  return module;
}

const OnnxLinear* OnnxCheckpoint::linear(const std::string& module) const {
  for (const OnnxLinear& l : linears) {
    if (l.module == module) return &l;
  }
  return nullptr;
}

OnnxCheckpoint read_onnx_checkpoint(std::shared_ptr<OnnxModel> model) {
  OnnxCheckpoint ck;
  ck.model = model;
  const OnnxModel& m = *model;
  auto owned = std::make_shared<Owned>();
  owned->model = model;
  std::vector<TensorInfo> tensors = m.initializers();
  std::map<std::string, bool> named;  // checkpoint names already present
  for (const TensorInfo& t : tensors) named[t.name] = true;

  for (size_t i = 0; i < m.nodes().size(); ++i) {
    const OnnxNode& n = m.nodes()[i];
    const bool nbits = n.op_type == "MatMulNBits" && n.domain == "com.microsoft";
    if (!nbits && n.op_type != "MatMul" && n.op_type != "Gemm") continue;
    if (n.inputs.size() < 2) continue;
    const TensorInfo* b = m.find(n.inputs[1]);
    if (b == nullptr) continue;  // activations times activations (attention)
    const std::string module = onnx_node_module(n);
    if (module.empty()) continue;
    const std::string wname = module + ".weight";
    if (ck.linear(module) != nullptr) fail(m.path(), "two linears claim module {}", module);
    OnnxLinear lin;
    lin.module = module;
    lin.node = static_cast<int>(i);
    lin.op = nbits ? "MatMulNBits" : n.op_type;
    lin.weight = n.inputs[1];
    if (nbits) {
      ck.quantized.emplace(wname, read_matmul_nbits(m, n, module));
      ck.linears.push_back(lin);
      continue;
    }
    if (n.op_type == "Gemm") {
      // Not a linear layer's product: transposed input, scaled product or bias.
      if (n.int_attribute("transA", 0) != 0 || n.float_attribute("alpha", 1.0f) != 1.0f ||
          n.float_attribute("beta", 1.0f) != 1.0f)
        continue;
      lin.b_is_out_in = n.int_attribute("transB", 0) != 0;
    }
    ck.linears.push_back(lin);
    if (b->name == wname || named.count(wname) != 0) continue;  // a parameter-named initializer
    if (b->shape.size() != 2) fail(m.path(), "the weight {} of {} is not 2-D", b->name, n.name);
    TensorInfo t = *b;
    t.name = wname;
    if (!lin.b_is_out_in) {  // [in, out] -> the parameter's [out, in]
      if (b->dtype != DType::F32 && b->dtype != DType::F16 && b->dtype != DType::BF16)
        fail(m.path(), "the weight {} of {} is not floating point", b->name, n.name);
      const int64_t rows = b->shape[0], cols = b->shape[1];
      std::vector<float> f(static_cast<size_t>(rows * cols)), tr(f.size());
      tensor_to_f32(*b, f.data());
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) tr[static_cast<size_t>(c * rows + r)] = f[r * cols + c];
      }
      owned->buffers.push_back(std::move(tr));
      t.dtype = DType::F32;
      t.shape = {cols, rows};
      t.data = reinterpret_cast<const uint8_t*>(owned->buffers.back().data());
      t.nbytes = owned->buffers.back().size() * sizeof(float);
    }
    named[wname] = true;
    tensors.push_back(std::move(t));
  }
  ck.store = TensorStore::from_tensors(m.path(), std::move(tensors), owned);
  return ck;
}

}  // namespace lowbit
