#include "lowbit/export/onnx_graph.h"

#include <cstring>
#include <fstream>

#include "lowbit/io/protobuf_wire.h"
#include "lowbit/util/error.h"

namespace lowbit::onnx_graph {

namespace {

// ---- protobuf wire format (io/protobuf_wire.h) ------------------------------------------------

constexpr pb::Wire kLen = pb::kLen;
using pb::varint_size;

struct Out {
  std::string s;
  void varint(uint64_t v) { pb::put_varint(&s, v); }
  void tag(int field, pb::Wire wire) { pb::put_tag(&s, static_cast<uint32_t>(field), wire); }
  // Negative int64: ten bytes, as protobuf writes them.
  void i64(int field, int64_t v) {
    pb::put_varint_field(&s, static_cast<uint32_t>(field), static_cast<uint64_t>(v));
  }
  void f32(int field, float v) {
    uint32_t u;
    std::memcpy(&u, &v, 4);
    pb::put_fixed32_field(&s, static_cast<uint32_t>(field), u);
  }
  void bytes(int field, const std::string& v) {
    pb::put_bytes_field(&s, static_cast<uint32_t>(field), v);
  }
};

// AttributeProto.AttributeType values.
constexpr int64_t kAttrFloat = 1, kAttrInt = 2, kAttrString = 3, kAttrInts = 7;

std::string encode(const Attr& a) {
  Out o;
  o.bytes(1, a.name);
  if (const auto* i = std::get_if<int64_t>(&a.value)) {
    o.i64(3, *i);
    o.i64(20, kAttrInt);
  } else if (const auto* f = std::get_if<float>(&a.value)) {
    o.f32(2, *f);
    o.i64(20, kAttrFloat);
  } else if (const auto* is = std::get_if<std::vector<int64_t>>(&a.value)) {
    for (int64_t v : *is) o.i64(8, v);
    o.i64(20, kAttrInts);
  } else {
    o.bytes(4, std::get<std::string>(a.value));
    o.i64(20, kAttrString);
  }
  return o.s;
}

std::string encode(const Node& n) {
  Out o;
  for (const std::string& in : n.inputs) o.bytes(1, in);
  for (const std::string& out : n.outputs) o.bytes(2, out);
  o.bytes(3, n.name);
  o.bytes(4, n.op_type);
  for (const Attr& a : n.attrs) o.bytes(5, encode(a));
  if (!n.domain.empty()) o.bytes(7, n.domain);
  return o.s;
}

std::string encode(const ValueInfo& v) {
  Out shape;
  for (const Dim& d : v.dims) {
    Out dim;
    if (d.param.empty()) {
      dim.i64(1, d.size);
    } else {
      dim.bytes(2, d.param);
    }
    shape.bytes(1, dim.s);
  }
  Out tensor;
  tensor.i64(1, static_cast<int64_t>(v.type));
  tensor.bytes(2, shape.s);
  Out type;
  type.bytes(1, tensor.s);
  Out o;
  o.bytes(1, v.name);
  o.bytes(2, type.s);
  return o.s;
}

// A TensorProto without its raw_data field (written separately, from the tensor's own buffer).
std::string tensor_head(const Tensor& t) {
  Out o;
  for (int64_t d : t.dims) o.i64(1, d);
  o.i64(2, static_cast<int64_t>(t.type));
  o.bytes(8, t.name);
  if (t.external) {
    auto entry = [&](const char* k, const std::string& v) {
      Out e;
      e.bytes(1, k);
      e.bytes(2, v);
      o.bytes(13, e.s);
    };
    entry("location", t.location);
    entry("offset", std::to_string(t.offset));
    entry("length", std::to_string(t.length));
    o.i64(14, 1);  // DataLocation EXTERNAL
  }
  return o.s;
}

uint64_t raw_field_size(const Tensor& t) {
  if (t.raw.empty()) return 0;
  return varint_size(9 << 3 | kLen) + varint_size(t.raw.size()) + t.raw.size();
}

uint64_t len_field_size(int field, uint64_t len) {
  return varint_size(static_cast<uint64_t>(field) << 3 | kLen) + varint_size(len) + len;
}

// The graph as pieces: everything but the initializers' raw bytes is in `head`/`tail` strings.
struct GraphPieces {
  std::string head;  // nodes, name
  std::vector<std::string> tensor_heads;
  std::string tail;  // inputs, outputs
  uint64_t size = 0;
};

GraphPieces encode_graph(const Graph& g) {
  GraphPieces p;
  Out head;
  for (const Node& n : g.nodes) head.bytes(1, encode(n));
  head.bytes(2, g.name);
  p.head = std::move(head.s);
  p.size = p.head.size();
  for (const Tensor& t : g.initializers) {
    p.tensor_heads.push_back(tensor_head(t));
    p.size += len_field_size(5, p.tensor_heads.back().size() + raw_field_size(t));
  }
  Out tail;
  for (const ValueInfo& v : g.inputs) tail.bytes(11, encode(v));
  for (const ValueInfo& v : g.outputs) tail.bytes(12, encode(v));
  p.tail = std::move(tail.s);
  p.size += p.tail.size();
  return p;
}

std::string model_head(const Model& m) {
  Out o;
  o.i64(1, m.ir_version);
  o.bytes(2, m.producer_name);
  if (!m.producer_version.empty()) o.bytes(3, m.producer_version);
  for (const auto& [domain, version] : m.opsets) {
    Out op;
    op.bytes(1, domain);
    op.i64(2, version);
    o.bytes(8, op.s);
  }
  return o.s;
}

}  // namespace

std::string Builder::unique(const std::string& hint) {
  return hint + "_" + std::to_string(counter_++);
}

std::vector<std::string> Builder::node(const std::string& op,
                                       const std::vector<std::string>& inputs, int n_out,
                                       const std::string& hint, const std::vector<Attr>& attrs,
                                       const std::string& domain) {
  Node n;
  n.op_type = op;
  n.domain = domain;
  n.name = unique(hint);
  n.inputs = inputs;
  for (int k = 0; k < n_out; ++k) {
    n.outputs.push_back(n_out == 1 ? n.name : n.name + "_" + std::to_string(k));
  }
  n.attrs = attrs;
  g_->nodes.push_back(std::move(n));
  return g_->nodes.back().outputs;
}

void Builder::op_to(const std::string& op, const std::vector<std::string>& inputs,
                    const std::string& out, const std::vector<Attr>& attrs) {
  node(op, inputs, 1, out, attrs);
  g_->nodes.back().outputs[0] = out;
}

std::string Builder::add_init(const std::string& name, ElemType t, const std::vector<int64_t>& dims,
                              const void* data, size_t bytes) {
  Tensor tensor;
  tensor.name = name;
  tensor.type = t;
  tensor.dims = dims;
  tensor.raw.assign(static_cast<const char*>(data), bytes);
  g_->initializers.push_back(std::move(tensor));
  init_bytes_ += bytes;
  return name;
}

std::string Builder::init_f32(const std::string& name, const std::vector<int64_t>& dims,
                              const float* data) {
  size_t n = 1;
  for (int64_t d : dims) n *= static_cast<size_t>(d);
  return add_init(name, ElemType::kFloat, dims, data, n * sizeof(float));
}

std::string Builder::init_u8(const std::string& name, const std::vector<int64_t>& dims,
                             const std::vector<uint8_t>& data) {
  return add_init(name, ElemType::kUint8, dims, data.data(), data.size());
}

std::string Builder::init_i64(const std::string& name, const std::vector<int64_t>& dims,
                              const std::vector<int64_t>& data) {
  return add_init(name, ElemType::kInt64, dims, data.data(), data.size() * sizeof(int64_t));
}

std::string Builder::const_i64(const std::vector<int64_t>& v) {
  std::string key = "i64[";
  for (int64_t x : v) key += std::to_string(x) + ",";
  for (const auto& [k, name] : consts_) {
    if (k == key) return name;
  }
  const std::string name = unique("const_i64");
  init_i64(name, {static_cast<int64_t>(v.size())}, v);
  consts_.emplace_back(key, name);
  return name;
}

std::string Builder::scalar_i64(int64_t v) {
  const std::string key = "i64:" + std::to_string(v);
  for (const auto& [k, name] : consts_) {
    if (k == key) return name;
  }
  const std::string name = unique("scalar_i64");
  init_i64(name, {}, {v});
  consts_.emplace_back(key, name);
  return name;
}

std::string Builder::scalar_f32(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  const std::string key = "f32:" + std::to_string(bits);
  for (const auto& [k, name] : consts_) {
    if (k == key) return name;
  }
  const std::string name = unique("scalar_f32");
  init_f32(name, {}, &v);
  consts_.emplace_back(key, name);
  return name;
}

void Builder::input(const std::string& name, ElemType t, const std::vector<Dim>& dims) {
  g_->inputs.push_back({name, t, dims});
}

void Builder::output(const std::string& name, ElemType t, const std::vector<Dim>& dims) {
  g_->outputs.push_back({name, t, dims});
}

uint64_t move_to_external_data(Model* model, const std::string& data_path,
                               const std::string& location, uint64_t min_bytes) {
  std::ofstream f(data_path, std::ios::binary | std::ios::trunc);
  if (!f) fail(data_path, "cannot create the external data file");
  uint64_t offset = 0, moved = 0;
  for (Tensor& t : model->graph.initializers) {
    if (t.raw.size() < min_bytes) continue;
    const uint64_t pad = (64 - offset % 64) % 64;
    if (pad > 0) {
      const char zeros[64] = {};
      f.write(zeros, static_cast<std::streamsize>(pad));
      offset += pad;
    }
    f.write(t.raw.data(), static_cast<std::streamsize>(t.raw.size()));
    if (!f) fail(data_path, "write failed (disk full?)");
    t.external = true;
    t.location = location;
    t.offset = offset;
    t.length = t.raw.size();
    offset += t.raw.size();
    moved += t.raw.size();
    std::string().swap(t.raw);
  }
  f.close();
  if (!f) fail(data_path, "write failed (disk full?)");
  return moved;
}

uint64_t serialized_size(const Model& model) {
  return model_head(model).size() + len_field_size(7, encode_graph(model.graph).size);
}

void write_model(const Model& model, const std::string& path) {
  const GraphPieces g = encode_graph(model.graph);
  const std::string head = model_head(model);
  const uint64_t total = head.size() + len_field_size(7, g.size);
  if (total > static_cast<uint64_t>(INT32_MAX)) {
    fail(path, "the graph is {} bytes, over protobuf's 2 GB limit (use --external-data)", total);
  }
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) fail(path, "cannot create the file");
  Out o;
  o.s = head;
  o.tag(7, kLen);
  o.varint(g.size);
  o.s += g.head;
  f.write(o.s.data(), static_cast<std::streamsize>(o.s.size()));
  for (size_t i = 0; i < g.tensor_heads.size(); ++i) {
    const Tensor& t = model.graph.initializers[i];
    Out th;
    th.tag(5, kLen);
    th.varint(g.tensor_heads[i].size() + raw_field_size(t));
    th.s += g.tensor_heads[i];
    if (!t.raw.empty()) {
      th.tag(9, kLen);
      th.varint(t.raw.size());
    }
    f.write(th.s.data(), static_cast<std::streamsize>(th.s.size()));
    f.write(t.raw.data(), static_cast<std::streamsize>(t.raw.size()));
  }
  f.write(g.tail.data(), static_cast<std::streamsize>(g.tail.size()));
  f.close();
  if (!f) fail(path, "write failed (disk full?)");
}

}  // namespace lowbit::onnx_graph
