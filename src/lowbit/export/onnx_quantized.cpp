#include "lowbit/export/onnx_quantized.h"

#include <algorithm>
#include <cstring>
#include <set>

#include "lowbit/export/onnx_edit.h"
#include "lowbit/formats/matmul_nbits.h"
#include "lowbit/io/onnx_model.h"
#include "lowbit/io/tensor_convert.h"
#include "lowbit/model/arch.h"
#include "lowbit/model/onnx_checkpoint.h"
#include "lowbit/model/weights.h"
#include "lowbit/util/error.h"
#include "lowbit/util/file.h"
#include "lowbit/util/half.h"

namespace lowbit {

namespace {

using enum TensorRole;

// The name under which the graph holds a role (first of the family's names found, with or
// without the base-model prefix), or "" when it holds none.
std::string stored_name(const TensorStore& store, const ArchSpec& arch, TensorRole role,
                        int layer) {
  const std::string prefix = arch.base_prefix;
  for (const TensorSpec& s : arch.tensors) {
    if (s.role != role) continue;
    const std::string n = tensor_name(s, layer);
    if (store.find(n) != nullptr) return n;
    if (!prefix.empty() && n.rfind(prefix, 0) == 0 && store.find(n.substr(prefix.size())))
      return n.substr(prefix.size());
  }
  return "";
}

// The model's fp32 values of a floating-point (non-linear-weight) role, `n` of them; empty when
// the model does not hold the role.
std::vector<float> fp_values(ModelWeights* w, TensorRole role, int layer, size_t n) {
  std::vector<float> v;
  auto take = [&](const float* p) {
    if (p != nullptr) v.assign(p, p + n);
  };
  if (role == kTokEmbeddings) {
    take(w->tok_embeddings);
  } else if (role == kPosEmbeddings) {
    take(w->pos_embeddings);
  } else if (Norm* nm = norm_of(role, w, layer)) {
    take(is_norm_bias(role) ? nm->b : nm->w);
  } else {
    const std::vector<Linear*> lins = linears_of(role, w, layer);
    if (lins.empty()) return v;
    if (!is_fused(role)) {
      take(lins[0]->bias);
      return v;
    }
    const std::vector<std::vector<int>> parts = fused_rows(role, w->cfg);
    v.assign(n, 0.0f);
    for (size_t p = 0; p < parts.size(); ++p) {
      if (lins[p]->bias == nullptr) return {};
      for (size_t i = 0; i < parts[p].size(); ++i) {
        const auto row = static_cast<size_t>(parts[p][i]);
        if (row >= n) return {};
        v[row] = lins[p]->bias[i];
      }
    }
  }
  return v;
}

}  // namespace

OnnxWriteSummary write_quantized_onnx(const std::string& source_onnx, const ModelWeights& q,
                                      const std::string& out_path) {
  OnnxWriteSummary sum;
  std::shared_ptr<OnnxModel> model = OnnxModel::open(source_onnx);
  const OnnxCheckpoint ck = read_onnx_checkpoint(model);
  if (!ck.quantized.empty())
    fail(source_onnx, "already holds MatMulNBits linears; quantize the floating-point graph");
  const ArchSpec* arch = find_arch(q.cfg.architecture);
  if (arch == nullptr) fail(source_onnx, "unsupported architecture {}", q.cfg.architecture);
  auto* w = const_cast<ModelWeights*>(&q);  // the role accessors hand out non-const pointers
  OnnxEdit e;
  std::set<std::string> replaced_weights, taken;
  for (const TensorInfo& t : model->initializers()) taken.insert(t.name);
  auto fresh = [&](const std::string& base) {
    std::string n = base;
    for (int i = 1; taken.count(n) != 0; ++i) n = base + "_" + std::to_string(i);
    taken.insert(n);
    return n;
  };

  std::vector<TensorRole> done;
  for (const TensorSpec& first : arch->tensors) {
    const TensorRole role = first.role;
    if (!tensor_present(role, q.cfg) || std::find(done.begin(), done.end(), role) != done.end())
      continue;
    done.push_back(role);
    const int layers = is_per_layer(role) ? q.cfg.n_layers : 1;
    for (int layer = 0; layer < layers; ++layer) {
      const std::string name = stored_name(ck.store, *arch, role, layer);
      if (name.empty()) continue;  // e.g. a tied lm_head the graph reads from the embeddings
      if (!is_linear_weight(role)) {
        const TensorInfo* t = model->find(name);
        if (t == nullptr ||
            (t->dtype != DType::F32 && t->dtype != DType::F16 && t->dtype != DType::BF16))
          continue;
        const auto n = static_cast<size_t>(t->numel());
        const std::vector<float> want = fp_values(w, role, layer, n);
        if (want.empty()) continue;
        std::vector<float> have(n);
        tensor_to_f32(*t, have.data());
        if (std::memcmp(have.data(), want.data(), n * sizeof(float)) == 0) continue;
        std::vector<uint8_t> bytes(n * dtype_size(t->dtype));
        if (t->dtype == DType::F32) {
          std::memcpy(bytes.data(), want.data(), bytes.size());
        } else {
          for (size_t i = 0; i < n; ++i) {
            const uint16_t h = t->dtype == DType::F16 ? f32_to_f16(want[i]) : f32_to_bf16(want[i]);
            std::memcpy(bytes.data() + 2 * i, &h, 2);
          }
        }
        e.replace_initializers[name] =
            onnx_tensor(name, t->dtype, t->shape, bytes.data(), bytes.size());
        ++sum.rewritten_floats;
        continue;
      }
      const std::vector<Linear*> lins = linears_of(role, w, layer);
      if (lins.empty() || lins[0]->quant == nullptr) continue;     // kept in floating point
      const std::string module = name.substr(0, name.size() - 7);  // ".weight"
      const std::string where = source_onnx + ": " + module;
      QuantizedWeight qw;
      if (!is_fused(role)) {
        qw = *lins[0]->quant;
      } else {
        std::vector<QuantizedWeight> parts;
        for (const Linear* l : lins) {
          if (l->quant == nullptr) fail(where, "only some parts of the fused module are quantized");
          parts.push_back(*l->quant);
        }
        const std::vector<std::vector<int>> rows = fused_rows(role, q.cfg);
        int total = 0;
        for (const auto& r : rows) total += static_cast<int>(r.size());
        qw = stack_rows(where, parts, rows, total);
      }
      const OnnxLinear* lin = ck.linear(module);
      if (lin == nullptr) fail(where, "no MatMul or Gemm node of the graph reads this module");
      const MatMulNBitsWeight m = to_matmul_nbits(where, qw);
      const OnnxNode& node = model->nodes()[static_cast<size_t>(lin->node)];
      std::vector<onnx::NodeProto> nodes;
      std::string a = node.inputs[0];
      const std::string base = lin->weight;
      if (!m.perm.empty()) {
        const std::string perm = fresh(base + "_perm");
        e.add_initializers.push_back(
            onnx_tensor(perm, DType::I64, {m.K}, m.perm.data(), m.perm.size() * sizeof(int64_t)));
        const std::string gathered = node.outputs[0] + "_act_order";
        nodes.push_back(onnx_node(node.name + "_act_order", "Gather", "", {a, perm}, {gathered},
                                  {{"axis", -1}}));
        a = gathered;
      }
      const std::string b = fresh(base + "_Q" + std::to_string(m.bits));
      const std::string s = fresh(base + "_scales");
      e.add_initializers.push_back(
          onnx_tensor(b, DType::U8, {m.N, m.k_blocks(), m.blob_size()}, m.B.data(), m.B.size()));
      e.add_initializers.push_back(onnx_tensor(s, DType::F32, {m.N * m.k_blocks()}, m.scales.data(),
                                               m.scales.size() * sizeof(float)));
      std::vector<std::string> inputs = {a, b, s};
      if (!m.zero_points.empty()) {
        const std::string z = fresh(base + "_zero_points");
        e.add_initializers.push_back(onnx_tensor(z, DType::U8,
                                                 {static_cast<int64_t>(m.zero_points.size())},
                                                 m.zero_points.data(), m.zero_points.size()));
        inputs.push_back(z);
      }
      const bool bias = lin->op == "Gemm" && node.inputs.size() >= 3 && !node.inputs[2].empty();
      const std::string out = bias ? node.outputs[0] + "_matmulnbits" : node.outputs[0];
      nodes.push_back(
          onnx_node(node.name, "MatMulNBits", "com.microsoft", inputs, {out},
                    {{"K", m.K}, {"N", m.N}, {"bits", m.bits}, {"block_size", m.block_size}}));
      if (bias) {
        nodes.push_back(onnx_node(node.name + "_bias", "Add", "", {out, node.inputs[2]},
                                  {node.outputs[0]}, {}));
      }
      e.nodes[lin->node] = std::move(nodes);
      replaced_weights.insert(lin->weight);
      ++sum.replaced;
    }
  }
  if (sum.replaced == 0) fail(source_onnx, "no linear of the model is quantized");
  // Weights no remaining node reads are dropped.
  for (size_t i = 0; i < model->nodes().size(); ++i) {
    if (e.nodes.count(static_cast<int>(i)) != 0) continue;
    for (const std::string& in : model->nodes()[i].inputs) replaced_weights.erase(in);
  }
  for (const std::string& n : replaced_weights) {
    e.drop_initializers.insert(n);
    e.replace_initializers.erase(n);
    ++sum.dropped;
  }
  e.add_opsets.push_back({"com.microsoft", 1});
  write_file_atomic(out_path, edited_onnx(*model, e));
  return sum;
}

}  // namespace lowbit
