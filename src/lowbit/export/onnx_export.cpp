#include "lowbit/export/onnx_export.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <vector>

#include "lowbit/export/onnx_graph.h"
#include "lowbit/formats/matmul_nbits.h"
#include "lowbit/io/limits.h"
#include "lowbit/io/output_dir.h"
#include "lowbit/kernels/packed_weight.h"
#include "lowbit/model/load.h"
#include "lowbit/ops/rope.h"
#include "lowbit/util/error.h"
#include "lowbit/util/file.h"
#include "lowbit/util/progress.h"

namespace lowbit {

namespace {

namespace fs = std::filesystem;
using onnx_graph::Attr;
using onnx_graph::Builder;
using onnx_graph::ElemType;

constexpr int64_t kOpset = 17;
constexpr const char* kMsDomain = "com.microsoft";

// What the graph cannot express, as one line naming it.
void check_supported(const std::string& where, const ModelConfig& c) {
  if (c.position == PositionKind::kAlibi) {
    fail(where, "ONNX export of ALiBi position biases ({} family) is not supported", c.family);
  }
  if (c.hadamard_down) {
    fail(where,
         "ONNX export of the online Hadamard transform before down_proj (QuaRot r4) is "
         "not supported");
  }
  if (c.n_kv_heads <= 0 || c.n_heads % c.n_kv_heads != 0) {
    fail(where, "{} attention heads are not a multiple of {} key/value heads", c.n_heads,
         c.n_kv_heads);
  }
  if (c.max_seq_len <= 0) fail(where, "the model has no maximum context length");
}

struct Emitter {
  Builder& b;
  const ModelWeights& w;
  const ModelConfig& c;
  std::string where;
  OnnxExportResult& r;
  std::string embed;      // the token embedding initializer
  std::string cos, sin;   // [batch, 1, seq, rot/2] (RoPE)
  std::string mask_bias;  // [batch, 1, rep·seq, total] additive attention mask

  std::string f32(const std::string& name, const std::vector<int64_t>& dims, const float* p) {
    return b.init_f32(name, dims, p);
  }

  // The architecture table's parameter name of a role ("model.layers.0.self_attn.q_proj.weight"),
  // "" when the family stores none of its own (fused q/k/v, gate/up). Norms and embeddings are
  // written under these names and linears' nodes named after their module as optimum names them
  // ("/model/layers.0/self_attn/q_proj/MatMul"), so lowbit reads its export back
  // (model/onnx_checkpoint.h) as it reads optimum's.
  std::string param(TensorRole role, int layer) const {
    const ArchSpec* arch = find_arch(c.architecture);
    if (arch == nullptr) return "";
    for (const TensorSpec& t : arch->tensors)
      if (t.role == role) return tensor_name(t, layer);
    return "";
  }
  std::string node_path(TensorRole role, int layer, const char* op) const {
    std::string m = param(role, layer);
    if (m.size() <= 7 || m.compare(m.size() - 7, 7, ".weight") != 0) return "";
    m = "/" + m.substr(0, m.size() - 7) + "/" + op;
    std::replace(m.begin(), m.end(), '.', '/');
    return m;
  }
  std::string param_or(TensorRole role, int layer, const std::string& fallback) const {
    const std::string n = param(role, layer);
    return n.empty() ? fallback : n;
  }

  // y = x W^T + b for a lowbit Linear, MatMul or MatMulNBits.
  std::string linear(const Linear& L, const std::string& name, const std::string& x,
                     TensorRole role, int layer = -1) {
    if (!L.present()) fail(where, "{} is missing", name);
    if (L.packed != nullptr && L.packed->act && L.packed->act->quantized) {
      fail(where, "{}: int8 activations cannot be exported to ONNX (weight-only schemes only)",
           name);
    }
    std::string in = x;
    if (L.in_scale != nullptr) {  // SmoothQuant --no-fold: x / s first
      in = b.op("Div", {in, f32(name + ".smooth_scale", {L.in}, L.in_scale)}, name + "_smooth");
    }
    std::string y;
    if (L.quant != nullptr) {
      const MatMulNBitsWeight m = to_matmul_nbits(where + ": " + name, *L.quant);
      if (!m.perm.empty()) {  // act-order: the input's columns in stored order
        const std::string perm = b.init_i64(name + ".perm", {m.K}, m.perm);
        in = b.op("Gather", {in, perm}, name + "_perm", {{"axis", int64_t{-1}}});
      }
      std::vector<std::string> ins = {
          in, b.init_u8(name + ".qweight", {m.N, m.k_blocks(), m.blob_size()}, m.B),
          f32(name + ".scales", {m.N, m.k_blocks()}, m.scales.data())};
      if (!m.zero_points.empty()) {
        ins.push_back(b.init_u8(name + ".qzeros", {m.N, m.zero_point_row_bytes()}, m.zero_points));
      }
      const std::string path = node_path(role, layer, "MatMulNBits");
      y = b.op("MatMulNBits", ins, path.empty() ? name : path,
               {{"K", m.K},
                {"N", m.N},
                {"bits", int64_t{m.bits}},
                {"block_size", int64_t{m.block_size}}},
               kMsDomain);
      ++r.quantized_linears;
    } else {
      if (L.w == nullptr) fail(where, "{} is held in a kernel layout without its weights", name);
      std::string wt;
      if (L.w == w.tok_embeddings && !embed.empty() && L.in == c.embed_dim()) {
        wt = b.op("Transpose", {embed}, name + "_tied", {{"perm", std::vector<int64_t>{1, 0}}});
      } else {
        std::vector<float> t(static_cast<size_t>(L.out) * L.in);
        for (int o = 0; o < L.out; ++o) {
          for (int i = 0; i < L.in; ++i) {
            t[static_cast<size_t>(i) * L.out + o] = L.w[static_cast<size_t>(o) * L.in + i];
          }
        }
        wt = f32(name + ".weight_t", {L.in, L.out}, t.data());  // [in, out]: not the parameter
      }
      const std::string path = node_path(role, layer, "MatMul");
      y = b.op("MatMul", {in, wt}, path.empty() ? name : path);
      ++r.float_linears;
    }
    if (L.bias != nullptr)
      y = b.op("Add", {y, f32(name + ".bias", {L.out}, L.bias)}, name + "_bias");
    return y;
  }

  std::string norm(const Norm& n, const std::string& name, const std::string& x, int dim,
                   TensorRole role, TensorRole bias_role, int layer = -1) {
    if (n.w == nullptr) fail(where, "{} is missing", name);
    const std::string scale = f32(param_or(role, layer, name + ".weight"), {dim}, n.w);
    const std::string bias = n.b ? f32(param_or(bias_role, layer, name + ".bias"), {dim}, n.b) : "";
    if (c.norm == NormKind::kLayer) {
      std::vector<std::string> ins = {x, scale};
      if (!bias.empty()) ins.push_back(bias);
      return b.op("LayerNormalization", ins, name,
                  {{"axis", int64_t{-1}}, {"epsilon", c.norm_eps}});
    }
    const std::string ms = b.op("ReduceMean", {b.op("Mul", {x, x}, name + "_sq")}, name + "_ms",
                                {{"axes", std::vector<int64_t>{-1}}, {"keepdims", int64_t{1}}});
    const std::string rms =
        b.op("Sqrt", {b.op("Add", {ms, b.scalar_f32(c.norm_eps)}, name + "_eps")}, name + "_rms");
    std::string y = b.op("Mul", {b.op("Div", {x, rms}, name + "_div"), scale}, name);
    if (!bias.empty()) y = b.op("Add", {y, bias}, name + "_bias");
    return y;
  }

  std::string activation(const std::string& x, const std::string& name) {
    switch (c.act) {
      case ops::Activation::kSilu:
        return b.op("Mul", {x, b.op("Sigmoid", {x}, name + "_sigmoid")}, name);
      case ops::Activation::kRelu:
        return b.op("Relu", {x}, name);
      case ops::Activation::kGeluErf: {
        const std::string e = b.op(
            "Erf", {b.op("Div", {x, b.scalar_f32(std::sqrt(2.0f))}, name + "_div")}, name + "_erf");
        const std::string one = b.op("Add", {e, b.scalar_f32(1.0f)}, name + "_1p");
        return b.op("Mul", {b.op("Mul", {x, b.scalar_f32(0.5f)}, name + "_half"), one}, name);
      }
      case ops::Activation::kGeluTanh: {
        const std::string x3 = b.op("Mul", {b.op("Mul", {x, x}, name + "_x2"), x}, name + "_x3");
        const std::string inner = b.op(
            "Add", {x, b.op("Mul", {x3, b.scalar_f32(0.044715f)}, name + "_cx3")}, name + "_in");
        const std::string t =
            b.op("Tanh",
                 {b.op("Mul", {inner, b.scalar_f32(static_cast<float>(std::sqrt(2.0 / M_PI)))},
                       name + "_k")},
                 name + "_tanh");
        const std::string one = b.op("Add", {t, b.scalar_f32(1.0f)}, name + "_1p");
        return b.op("Mul", {b.op("Mul", {x, b.scalar_f32(0.5f)}, name + "_half"), one}, name);
      }
    }
    fail(where, "activation {} cannot be exported", activation_name(c.act));
  }

  // RoPE on x [batch, heads, seq, head_dim].
  std::string rope(const std::string& x, const std::string& name) {
    const int hd = c.head_dim, rot = c.rope_dims > 0 ? c.rope_dims : hd, half = rot / 2;
    auto slice = [&](const std::string& t, int64_t s, int64_t e, int64_t axis, const char* tag) {
      return b.op("Slice", {t, b.const_i64({s}), b.const_i64({e}), b.const_i64({axis})},
                  name + tag);
    };
    const std::string xr = rot < hd ? slice(x, 0, rot, 3, "_rot") : x;
    std::string out;
    if (!c.rope_interleaved) {
      const std::string x1 = slice(xr, 0, half, 3, "_x1"), x2 = slice(xr, half, rot, 3, "_x2");
      const std::string o1 = b.op(
          "Sub", {b.op("Mul", {x1, cos}, name + "_x1c"), b.op("Mul", {x2, sin}, name + "_x2s")},
          name + "_o1");
      const std::string o2 = b.op(
          "Add", {b.op("Mul", {x2, cos}, name + "_x2c"), b.op("Mul", {x1, sin}, name + "_x1s")},
          name + "_o2");
      out = b.op("Concat", {o1, o2}, name + "_cat", {{"axis", int64_t{3}}});
    } else {
      const std::string x5 =
          b.op("Reshape", {xr, b.const_i64({0, 0, 0, half, 2})}, name + "_pairs");
      const std::string a = slice(x5, 0, 1, 4, "_a"), bb = slice(x5, 1, 2, 4, "_b");
      const std::string c5 = b.op("Unsqueeze", {cos, b.const_i64({-1})}, name + "_c5");
      const std::string s5 = b.op("Unsqueeze", {sin, b.const_i64({-1})}, name + "_s5");
      const std::string o1 =
          b.op("Sub", {b.op("Mul", {a, c5}, name + "_ac"), b.op("Mul", {bb, s5}, name + "_bs")},
               name + "_o1");
      const std::string o2 =
          b.op("Add", {b.op("Mul", {bb, c5}, name + "_bc"), b.op("Mul", {a, s5}, name + "_as")},
               name + "_o2");
      out = b.op("Reshape",
                 {b.op("Concat", {o1, o2}, name + "_cat", {{"axis", int64_t{4}}}),
                  b.const_i64({0, 0, 0, rot})},
                 name + "_unpair");
    }
    if (rot < hd) {
      out = b.op("Concat", {out, slice(x, rot, hd, 3, "_pass")}, name + "_full",
                 {{"axis", int64_t{3}}});
    }
    return out;
  }

  // [batch, seq, heads·head_dim] -> [batch, heads, seq, head_dim]
  std::string heads(const std::string& x, int n, const std::string& name) {
    const std::string r = b.op("Reshape", {x, b.const_i64({0, 0, n, c.head_dim})}, name + "_split");
    return b.op("Transpose", {r}, name + "_heads", {{"perm", std::vector<int64_t>{0, 2, 1, 3}}});
  }

  std::string attention(const LayerWeights& L, int l, const std::string& xn) {
    const std::string p = "layers." + std::to_string(l) + ".attn.";
    const int H = c.n_heads, KV = c.n_kv_heads, hd = c.head_dim, rep = H / KV;
    std::string q = heads(linear(L.wq, p + "q_proj", xn, TensorRole::kWq, l), H, p + "q");
    std::string k = heads(linear(L.wk, p + "k_proj", xn, TensorRole::kWk, l), KV, p + "k");
    const std::string v = heads(linear(L.wv, p + "v_proj", xn, TensorRole::kWv, l), KV, p + "v");
    if (c.position == PositionKind::kRope) {
      q = rope(q, p + "q_rope");
      k = rope(k, p + "k_rope");
    }
    const std::string li = std::to_string(l);
    const std::string pk = "present." + li + ".key", pv = "present." + li + ".value";
    b.op_to("Concat", {"past_key_values." + li + ".key", k}, pk, {{"axis", int64_t{2}}});
    b.op_to("Concat", {"past_key_values." + li + ".value", v}, pv, {{"axis", int64_t{2}}});
    // Grouped queries: the rep heads of a key/value group stacked along the sequence axis.
    const std::string qg =
        rep > 1 ? b.op("Reshape", {q, b.const_i64({0, KV, -1, hd})}, p + "qg") : q;
    const std::string kt =
        b.op("Transpose", {pk}, p + "kt", {{"perm", std::vector<int64_t>{0, 1, 3, 2}}});
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    const std::string s =
        b.op("Mul", {b.op("MatMul", {qg, kt}, p + "qk"), b.scalar_f32(scale)}, p + "scaled");
    const std::string probs = b.op("Softmax", {b.op("Add", {s, mask_bias}, p + "masked")},
                                   p + "probs", {{"axis", int64_t{-1}}});
    std::string o = b.op("MatMul", {probs, pv}, p + "ctx");
    if (rep > 1) o = b.op("Reshape", {o, b.const_i64({0, H, -1, hd})}, p + "ctx_heads");
    o = b.op("Transpose", {o}, p + "ctx_t", {{"perm", std::vector<int64_t>{0, 2, 1, 3}}});
    o = b.op("Reshape", {o, b.const_i64({0, 0, H * hd})}, p + "ctx_merged");
    return linear(L.wo, p + "o_proj", o, TensorRole::kWo, l);
  }

  std::string mlp(const LayerWeights& L, int l, const std::string& x) {
    const std::string p = "layers." + std::to_string(l) + ".mlp.";
    std::string h;
    if (c.gated_mlp) {
      h = b.op("Mul",
               {activation(linear(L.w_gate, p + "gate_proj", x, TensorRole::kWGate, l), p + "act"),
                linear(L.w_up, p + "up_proj", x, TensorRole::kWUp, l)},
               p + "gated");
    } else {
      h = activation(linear(L.w_up, p + "up_proj", x, TensorRole::kWUp, l), p + "act");
    }
    return linear(L.w_down, p + "down_proj", h, TensorRole::kWDown, l);
  }

  // The inputs, the positions (RoPE tables or learned rows) and the attention mask.
  std::string inputs() {
    b.input("input_ids", ElemType::kInt64, {"batch_size", "sequence_length"});
    b.input("attention_mask", ElemType::kInt64, {"batch_size", "total_sequence_length"});
    b.input("position_ids", ElemType::kInt64, {"batch_size", "sequence_length"});
    for (int l = 0; l < c.n_layers; ++l) {
      for (const char* kv : {"key", "value"}) {
        b.input("past_key_values." + std::to_string(l) + "." + kv, ElemType::kFloat,
                {"batch_size", c.n_kv_heads, "past_sequence_length", c.head_dim});
      }
    }
    const int ed = c.embed_dim();
    embed = f32(param_or(TensorRole::kTokEmbeddings, -1, "embed_tokens.weight"), {c.vocab_size, ed},
                w.tok_embeddings);
    std::string x = b.op("Gather", {embed, "input_ids"}, "embed", {{"axis", int64_t{0}}});
    if (c.position == PositionKind::kLearned) {
      if (w.pos_embeddings == nullptr) fail(where, "the learned position embeddings are missing");
      const std::string pe = f32(param_or(TensorRole::kPosEmbeddings, -1, "embed_positions.weight"),
                                 {c.max_seq_len + c.position_offset, ed}, w.pos_embeddings);
      std::string pos = "position_ids";
      if (c.position_offset != 0) {
        pos = b.op("Add", {pos, b.scalar_i64(c.position_offset)}, "positions_offset");
      }
      x = b.op("Add", {x, b.op("Gather", {pe, pos}, "pos_embed", {{"axis", int64_t{0}}})},
               "embed_pos");
    }
    if (c.embed_norm)
      x = norm(w.embed_norm, "embed_norm", x, ed, TensorRole::kEmbedNorm,
               TensorRole::kEmbedNormBias);
    if (c.proj_dim > 0) x = linear(w.proj_in, "project_in", x, TensorRole::kProjIn);

    if (c.position == PositionKind::kRope) {
      const int rot = c.rope_dims > 0 ? c.rope_dims : c.head_dim, half = rot / 2;
      const std::vector<float> inv = ops::rope_inv_freq(c);
      if (static_cast<int>(inv.size()) < half) fail(where, "RoPE frequency table too short");
      std::vector<float> ct(static_cast<size_t>(c.max_seq_len) * half), st(ct.size());
      for (int p = 0; p < c.max_seq_len; ++p) {
        for (int i = 0; i < half; ++i) {
          const float angle = static_cast<float>(p) * inv[static_cast<size_t>(i)];
          ct[static_cast<size_t>(p) * half + i] = std::cos(angle);
          st[static_cast<size_t>(p) * half + i] = std::sin(angle);
        }
      }
      const std::string ctab = f32("rope.cos", {c.max_seq_len, half}, ct.data());
      const std::string stab = f32("rope.sin", {c.max_seq_len, half}, st.data());
      const std::string ax1 = b.const_i64({1});
      cos = b.op("Unsqueeze", {b.op("Gather", {ctab, "position_ids"}, "cos_rows"), ax1}, "cos");
      sin = b.op("Unsqueeze", {b.op("Gather", {stab, "position_ids"}, "sin_rows"), ax1}, "sin");
    }

    // Causal + padding mask over [past + seq] keys: query i (at total − seq + i) sees key j when
    // j ≤ total − seq + i and attention_mask[j] is 1.
    const std::string total = b.op("Squeeze",
                                   {b.op("Shape", {"attention_mask"}, "total_1",
                                         {{"start", int64_t{1}}, {"end", int64_t{2}}})},
                                   "total");
    const std::string seq =
        b.op("Squeeze",
             {b.op("Shape", {"input_ids"}, "seq_1", {{"start", int64_t{1}}, {"end", int64_t{2}}})},
             "seq");
    const std::string past = b.op("Sub", {total, seq}, "past");
    const std::string one = b.scalar_i64(1);
    const std::string kpos = b.op("Range", {b.scalar_i64(0), total, one}, "key_pos");
    const std::string qpos =
        b.op("Unsqueeze", {b.op("Range", {past, total, one}, "query_pos_1"), b.const_i64({1})},
             "query_pos");
    const std::string causal = b.op("LessOrEqual", {kpos, qpos}, "causal");
    const std::string pad = b.op("Unsqueeze",
                                 {b.op("Cast", {"attention_mask"}, "mask_bool",
                                       {{"to", static_cast<int64_t>(ElemType::kBool)}}),
                                  b.const_i64({1, 2})},
                                 "mask_4d");
    mask_bias = b.op("Where",
                     {b.op("And", {causal, pad}, "allowed"), b.scalar_f32(0.0f),
                      b.scalar_f32(std::numeric_limits<float>::lowest())},
                     "mask_bias");
    const int rep = c.n_heads / c.n_kv_heads;
    if (rep > 1) mask_bias = b.op("Tile", {mask_bias, b.const_i64({1, 1, rep, 1})}, "mask_rep");
    return x;
  }

  void build(Progress* bar) {
    std::string x = inputs();
    for (int l = 0; l < c.n_layers; ++l) {
      const LayerWeights& L = w.layers[static_cast<size_t>(l)];
      const std::string p = "layers." + std::to_string(l) + ".";
      const std::string xa = c.post_norm
                                 ? x
                                 : norm(L.attn_norm, p + "attn_norm", x, c.dim,
                                        TensorRole::kAttnNorm, TensorRole::kAttnNormBias, l);
      const std::string a = attention(L, l, xa);
      if (c.parallel_block) {
        const std::string mi = c.shared_norm
                                   ? xa
                                   : norm(L.ffn_norm, p + "ffn_norm", x, c.dim,
                                          TensorRole::kFfnNorm, TensorRole::kFfnNormBias, l);
        const std::string m = mlp(L, l, mi);
        x = b.op("Add", {b.op("Add", {x, a}, p + "res_attn"), m}, p + "res_mlp");
      } else {
        x = b.op("Add", {x, a}, p + "res_attn");
        if (c.post_norm)
          x = norm(L.attn_norm, p + "attn_norm", x, c.dim, TensorRole::kAttnNorm,
                   TensorRole::kAttnNormBias, l);
        const std::string mi = c.post_norm
                                   ? x
                                   : norm(L.ffn_norm, p + "ffn_norm", x, c.dim,
                                          TensorRole::kFfnNorm, TensorRole::kFfnNormBias, l);
        x = b.op("Add", {x, mlp(L, l, mi)}, p + "res_mlp");
        if (c.post_norm)
          x = norm(L.ffn_norm, p + "ffn_norm", x, c.dim, TensorRole::kFfnNorm,
                   TensorRole::kFfnNormBias, l);
      }
      for (const char* kv : {"key", "value"}) {
        b.output("present." + std::to_string(l) + "." + kv, ElemType::kFloat,
                 {"batch_size", c.n_kv_heads, "total_sequence_length", c.head_dim});
      }
      if (bar) bar->add();
    }
    if (c.final_norm)
      x = norm(w.final_norm, "final_norm", x, c.dim, TensorRole::kFinalNorm,
               TensorRole::kFinalNormBias);
    if (c.proj_dim > 0) x = linear(w.proj_out, "project_out", x, TensorRole::kProjOut);
    b.op_to("Identity", {linear(w.lm_head, "lm_head", x, TensorRole::kLmHead)}, "logits");
    b.output("logits", ElemType::kFloat, {"batch_size", "sequence_length", c.vocab_size});
  }
};

// config.json's pad_token_id when it has one, else eos.
int pad_id(const nlohmann::json& cfg, int eos) {
  if (cfg.is_object() && cfg.contains("pad_token_id") && cfg["pad_token_id"].is_number_integer()) {
    return cfg["pad_token_id"].get<int>();
  }
  return eos;
}

std::string genai_config(const ModelConfig& c, int pad) {
  nlohmann::ordered_json d;
  d["filename"] = "model.onnx";
  d["head_size"] = c.head_dim;
  d["hidden_size"] = c.dim;
  d["inputs"] = {{"input_ids", "input_ids"},
                 {"attention_mask", "attention_mask"},
                 {"position_ids", "position_ids"},
                 {"past_key_names", "past_key_values.%d.key"},
                 {"past_value_names", "past_key_values.%d.value"}};
  d["outputs"] = {{"logits", "logits"},
                  {"present_key_names", "present.%d.key"},
                  {"present_value_names", "present.%d.value"}};
  d["num_attention_heads"] = c.n_heads;
  d["num_hidden_layers"] = c.n_layers;
  d["num_key_value_heads"] = c.n_kv_heads;
  d["session_options"] = {{"log_id", "onnxruntime-genai"},
                          {"provider_options", nlohmann::ordered_json::array()}};
  nlohmann::ordered_json g;
  g["model"] = {{"bos_token_id", c.bos_id},
                {"context_length", c.max_seq_len},
                {"decoder", d},
                {"eos_token_id", c.eos_id},
                {"pad_token_id", pad},
                {"type", c.family},
                {"vocab_size", c.vocab_size}};
  g["search"] = {{"diversity_penalty", 0.0},
                 {"do_sample", false},
                 {"early_stopping", true},
                 {"length_penalty", 1.0},
                 {"max_length", c.max_seq_len},
                 {"min_length", 0},
                 {"no_repeat_ngram_size", 0},
                 {"num_beams", 1},
                 {"num_return_sequences", 1},
                 {"past_present_share_buffer", false},
                 {"repetition_penalty", 1.0},
                 {"temperature", 1.0},
                 {"top_k", 1},
                 {"top_p", 1.0}};
  return g.dump(4) + "\n";
}

}  // namespace

OnnxExportResult export_onnx(const OnnxExportOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  OnnxExportResult r;
  const ModelLocation loc = locate_model(opt.model, "", /*find_tokenizer=*/false);
  OutputDirOptions od_opt;
  od_opt.force = opt.force;
  od_opt.inputs = model_input_paths(opt.model);
  od_opt.command = "export onnx";
  // Before loading: the output may not cover the input, and an existing or unwritable output
  // fails before any work (the temp folder is removed again if the export fails).
  OutputDir out(opt.out, od_opt);

  RuntimeOptions rt;
  rt.keep_quantized = true;
  const LoadedModel lm = load_model(opt.model, "", /*load_tokenizer=*/false, rt);
  const ModelWeights& w = *lm.weights;
  const ModelConfig& c = w.cfg;
  check_supported(opt.model, c);
  r.family = c.family;

  onnx::ModelProto model =
      onnx_graph::new_model("lowbit_" + c.family, "0.1.0", {{"", kOpset}, {kMsDomain, 1}});
  Builder b(model.mutable_graph());
  {
    Progress bar("export onnx", c.n_layers);
    Emitter e{b, w, c, opt.model, r, {}, {}, {}, {}};
    e.build(opt.progress ? &bar : nullptr);
  }
  r.nodes = model.graph().node_size();
  r.initializer_bytes = b.initializer_bytes();
  r.external_data = opt.external_data || r.initializer_bytes > kOnnxAutoExternalBytes;

  if (r.external_data) {
    onnx_graph::move_to_external_data(&model, out.file("model.onnx.data"), "model.onnx.data");
  }
  onnx_graph::write_model(model, out.file("model.onnx"));

  // config.json (without the quantization block: the graph is the quantized model now),
  // generation_config.json and the tokenizer files beside the model.
  nlohmann::json cfg_json;
  if (loc.hf) {
    const std::string cfg_path = (fs::path(loc.weights) / "config.json").string();
    cfg_json = nlohmann::json::parse(read_file(cfg_path, kMaxConfigBytes, "config.json"), nullptr,
                                     /*allow_exceptions=*/false);
    if (!cfg_json.is_object()) fail(cfg_path, "not a JSON object");
    cfg_json.erase("quantization_config");
    for (const char* f : {"generation_config.json", "tokenizer.json", "tokenizer_config.json",
                          "special_tokens_map.json", "vocab.json", "merges.txt", "tokenizer.model",
                          "added_tokens.json"}) {
      const fs::path src = fs::path(loc.weights) / f;
      if (fs::is_regular_file(src)) copy_file(src.string(), out.file(f));
    }
  } else {
    cfg_json = nlohmann::json::parse(to_hf_config_json(c));
  }
  write_file_atomic(out.file("config.json"), cfg_json.dump(2) + "\n");
  write_file_atomic(out.file("genai_config.json"), genai_config(c, pad_id(cfg_json, c.eos_id)));
  out.commit();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace lowbit
