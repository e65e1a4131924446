#include "lowbit/export/onnx_graph.h"

#include <onnx/onnx_pb.h>

#include <cstring>
#include <fstream>

#include "lowbit/util/error.h"

namespace lowbit::onnx_graph {

namespace {

int32_t proto_type(ElemType t) {
  switch (t) {
    case ElemType::kFloat:
      return onnx::TensorProto::FLOAT;
    case ElemType::kUint8:
      return onnx::TensorProto::UINT8;
    case ElemType::kInt32:
      return onnx::TensorProto::INT32;
    case ElemType::kInt64:
      return onnx::TensorProto::INT64;
  }
  return onnx::TensorProto::UNDEFINED;
}

void set_value_info(onnx::ValueInfoProto* vi, const std::string& name, ElemType t,
                    const std::vector<Dim>& dims) {
  vi->set_name(name);
  auto* tt = vi->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(proto_type(t));
  auto* shape = tt->mutable_shape();
  for (const Dim& d : dims) {
    auto* dim = shape->add_dim();
    if (d.param.empty()) {
      dim->set_dim_value(d.size);
    } else {
      dim->set_dim_param(d.param);
    }
  }
}

onnx::TensorProto* add_tensor(onnx::GraphProto* g, const std::string& name, ElemType t,
                              const std::vector<int64_t>& dims, const void* data, size_t bytes) {
  onnx::TensorProto* tp = g->add_initializer();
  tp->set_name(name);
  tp->set_data_type(proto_type(t));
  for (int64_t d : dims) tp->add_dims(d);
  tp->set_raw_data(std::string(static_cast<const char*>(data), bytes));
  return tp;
}

}  // namespace

std::string Builder::unique(const std::string& hint) {
  return hint + "_" + std::to_string(counter_++);
}

std::vector<std::string> Builder::node(const std::string& op,
                                       const std::vector<std::string>& inputs, int n_out,
                                       const std::string& hint, const std::vector<Attr>& attrs,
                                       const std::string& domain) {
  onnx::NodeProto* n = g_->add_node();
  n->set_op_type(op);
  if (!domain.empty()) n->set_domain(domain);
  const std::string base = unique(hint);
  n->set_name(base);
  for (const std::string& in : inputs) n->add_input(in);
  std::vector<std::string> outs;
  for (int k = 0; k < n_out; ++k) {
    outs.push_back(n_out == 1 ? base : base + "_" + std::to_string(k));
    n->add_output(outs.back());
  }
  for (const Attr& a : attrs) {
    onnx::AttributeProto* ap = n->add_attribute();
    ap->set_name(a.name);
    if (const auto* i = std::get_if<int64_t>(&a.value)) {
      ap->set_type(onnx::AttributeProto::INT);
      ap->set_i(*i);
    } else if (const auto* f = std::get_if<float>(&a.value)) {
      ap->set_type(onnx::AttributeProto::FLOAT);
      ap->set_f(*f);
    } else if (const auto* is = std::get_if<std::vector<int64_t>>(&a.value)) {
      ap->set_type(onnx::AttributeProto::INTS);
      for (int64_t v : *is) ap->add_ints(v);
    } else {
      ap->set_type(onnx::AttributeProto::STRING);
      ap->set_s(std::get<std::string>(a.value));
    }
  }
  return outs;
}

void Builder::op_to(const std::string& op, const std::vector<std::string>& inputs,
                    const std::string& out, const std::vector<Attr>& attrs) {
  const std::string tmp = this->op(op, inputs, out, attrs);
  // Rename the single output of the node just added.
  onnx::NodeProto* n = g_->mutable_node(g_->node_size() - 1);
  n->set_output(0, out);
  (void)tmp;
}

std::string Builder::init_f32(const std::string& name, const std::vector<int64_t>& dims,
                              const float* data) {
  size_t n = 1;
  for (int64_t d : dims) n *= static_cast<size_t>(d);
  add_tensor(g_, name, ElemType::kFloat, dims, data, n * sizeof(float));
  init_bytes_ += n * sizeof(float);
  return name;
}

std::string Builder::init_u8(const std::string& name, const std::vector<int64_t>& dims,
                             const std::vector<uint8_t>& data) {
  add_tensor(g_, name, ElemType::kUint8, dims, data.data(), data.size());
  init_bytes_ += data.size();
  return name;
}

std::string Builder::init_i64(const std::string& name, const std::vector<int64_t>& dims,
                              const std::vector<int64_t>& data) {
  add_tensor(g_, name, ElemType::kInt64, dims, data.data(), data.size() * sizeof(int64_t));
  init_bytes_ += data.size() * sizeof(int64_t);
  return name;
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
  set_value_info(g_->add_input(), name, t, dims);
}

void Builder::output(const std::string& name, ElemType t, const std::vector<Dim>& dims) {
  set_value_info(g_->add_output(), name, t, dims);
}

uint64_t move_to_external_data(onnx::ModelProto* model, const std::string& data_path,
                               const std::string& location, uint64_t min_bytes) {
  std::ofstream f(data_path, std::ios::binary | std::ios::trunc);
  if (!f) fail(data_path, "cannot create the external data file");
  uint64_t offset = 0, moved = 0;
  onnx::GraphProto* g = model->mutable_graph();
  for (int i = 0; i < g->initializer_size(); ++i) {
    onnx::TensorProto* t = g->mutable_initializer(i);
    if (t->raw_data().size() < min_bytes) continue;
    const uint64_t pad = (64 - offset % 64) % 64;
    if (pad > 0) {
      const char zeros[64] = {};
      f.write(zeros, static_cast<std::streamsize>(pad));
      offset += pad;
    }
    const std::string& raw = t->raw_data();
    f.write(raw.data(), static_cast<std::streamsize>(raw.size()));
    if (!f) fail(data_path, "write failed (disk full?)");
    auto add = [&](const char* key, const std::string& value) {
      onnx::StringStringEntryProto* e = t->add_external_data();
      e->set_key(key);
      e->set_value(value);
    };
    add("location", location);
    add("offset", std::to_string(offset));
    add("length", std::to_string(raw.size()));
    t->set_data_location(onnx::TensorProto::EXTERNAL);
    offset += raw.size();
    moved += raw.size();
    t->clear_raw_data();
  }
  f.close();
  if (!f) fail(data_path, "write failed (disk full?)");
  return moved;
}

void write_model(const onnx::ModelProto& model, const std::string& path) {
  const size_t bytes = model.ByteSizeLong();
  if (bytes > static_cast<size_t>(INT32_MAX)) {
    fail(path, "the graph is {} bytes, over protobuf's 2 GB limit (use --external-data)", bytes);
  }
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) fail(path, "cannot create the file");
  if (!model.SerializeToOstream(&f)) fail(path, "write failed (disk full?)");
  f.close();
  if (!f) fail(path, "write failed (disk full?)");
}

}  // namespace lowbit::onnx_graph
