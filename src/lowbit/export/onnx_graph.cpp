#include "lowbit/export/onnx_graph.h"

#include <cstring>
#include <fstream>

#include "lowbit/util/error.h"

namespace lowbit::onnx_graph {

onnx::ModelProto new_model(const std::string& graph_name, const std::string& producer_version,
                           const std::vector<std::pair<std::string, int64_t>>& opsets,
                           int64_t ir_version) {
  onnx::ModelProto m;
  m.set_ir_version(ir_version);
  m.set_producer_name("lowbit");
  m.set_producer_version(producer_version);
  for (const auto& [domain, version] : opsets) {
    onnx::OperatorSetIdProto* op = m.add_opset_import();
    op->set_domain(domain);
    op->set_version(version);
  }
  m.mutable_graph()->set_name(graph_name);
  return m;
}

std::string Builder::unique(const std::string& hint) {
  return hint + "_" + std::to_string(counter_++);
}

namespace {

void set_attr(onnx::AttributeProto* p, const Attr& a) {
  p->set_name(a.name);
  if (const auto* i = std::get_if<int64_t>(&a.value)) {
    p->set_type(onnx::AttributeProto_AttributeType_INT);
    p->set_i(*i);
  } else if (const auto* f = std::get_if<float>(&a.value)) {
    p->set_type(onnx::AttributeProto_AttributeType_FLOAT);
    p->set_f(*f);
  } else if (const auto* is = std::get_if<std::vector<int64_t>>(&a.value)) {
    p->set_type(onnx::AttributeProto_AttributeType_INTS);
    for (int64_t v : *is) p->add_ints(v);
  } else {
    p->set_type(onnx::AttributeProto_AttributeType_STRING);
    p->set_s(std::get<std::string>(a.value));
  }
}

void set_value_info(onnx::ValueInfoProto* v, const std::string& name, ElemType t,
                    const std::vector<Dim>& dims) {
  v->set_name(name);
  onnx::TypeProto_Tensor* tensor = v->mutable_type()->mutable_tensor_type();
  tensor->set_elem_type(static_cast<int32_t>(t));
  onnx::TensorShapeProto* shape = tensor->mutable_shape();
  for (const Dim& d : dims) {
    onnx::TensorShapeProto_Dimension* dim = shape->add_dim();
    if (d.param.empty()) {
      dim->set_dim_value(d.size);
    } else {
      dim->set_dim_param(d.param);
    }
  }
}

}  // namespace

std::vector<std::string> Builder::node(const std::string& op,
                                       const std::vector<std::string>& inputs, int n_out,
                                       const std::string& hint, const std::vector<Attr>& attrs,
                                       const std::string& domain) {
  onnx::NodeProto* n = g_->add_node();
  n->set_op_type(op);
  if (!domain.empty()) n->set_domain(domain);
  n->set_name(unique(hint));
  for (const std::string& in : inputs) n->add_input(in);
  std::vector<std::string> outputs;
  for (int k = 0; k < n_out; ++k) {
    outputs.push_back(n_out == 1 ? n->name() : n->name() + "_" + std::to_string(k));
    n->add_output(outputs.back());
  }
  for (const Attr& a : attrs) set_attr(n->add_attribute(), a);
  return outputs;
}

void Builder::op_to(const std::string& op, const std::vector<std::string>& inputs,
                    const std::string& out, const std::vector<Attr>& attrs) {
  node(op, inputs, 1, out, attrs);
  g_->mutable_node(g_->node_size() - 1)->set_output(0, out);
}

std::string Builder::add_init(const std::string& name, ElemType t, const std::vector<int64_t>& dims,
                              const void* data, size_t bytes) {
  onnx::TensorProto* tensor = g_->add_initializer();
  tensor->set_name(name);
  tensor->set_data_type(static_cast<int32_t>(t));
  for (int64_t d : dims) tensor->add_dims(d);
  tensor->set_raw_data(data, bytes);
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
  for (onnx::TensorProto& t : *model->mutable_graph()->mutable_initializer()) {
    const std::string& raw = t.raw_data();
    if (raw.size() < min_bytes) continue;
    const uint64_t pad = (64 - offset % 64) % 64;
    if (pad > 0) {
      const char zeros[64] = {};
      f.write(zeros, static_cast<std::streamsize>(pad));
      offset += pad;
    }
    f.write(raw.data(), static_cast<std::streamsize>(raw.size()));
    if (!f) fail(data_path, "write failed (disk full?)");
    auto entry = [&](const char* k, const std::string& v) {
      onnx::StringStringEntryProto* e = t.add_external_data();
      e->set_key(k);
      e->set_value(v);
    };
    const uint64_t length = raw.size();
    entry("location", location);
    entry("offset", std::to_string(offset));
    entry("length", std::to_string(length));
    t.set_data_location(onnx::TensorProto_DataLocation_EXTERNAL);
    std::string().swap(*t.mutable_raw_data());  // frees the bytes (clear() would keep them)
    offset += length;
    moved += length;
  }
  f.close();
  if (!f) fail(data_path, "write failed (disk full?)");
  return moved;
}

void write_model(const onnx::ModelProto& model, const std::string& path) {
  const size_t total = model.ByteSizeLong();
  if (total > static_cast<size_t>(INT32_MAX)) {
    fail(path, "the graph is {} bytes, over protobuf's 2 GB limit (use --external-data)", total);
  }
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) fail(path, "cannot create the file");
  if (!model.SerializeToOstream(&f)) fail(path, "write failed (disk full?)");
  f.close();
  if (!f) fail(path, "write failed (disk full?)");
}

}  // namespace lowbit::onnx_graph
