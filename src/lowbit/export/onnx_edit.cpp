#include "lowbit/export/onnx_edit.h"

#include <climits>

#include "lowbit/util/error.h"

namespace lowbit {

std::string edited_onnx(const OnnxModel& m, const OnnxEdit& e) {
  onnx::ModelProto model;
  if (m.bytes().size() > static_cast<size_t>(INT_MAX) || !model.ParseFromString(m.bytes())) {
    fail(m.path(), "libonnx cannot parse this ModelProto");
  }
  onnx::GraphProto* g = model.mutable_graph();

  google::protobuf::RepeatedPtrField<onnx::NodeProto> nodes;
  nodes.Swap(g->mutable_node());
  for (int i = 0; i < nodes.size(); ++i) {
    auto it = e.nodes.find(i);
    if (it == e.nodes.end()) {
      *g->add_node() = std::move(*nodes.Mutable(i));
    } else {
      for (const onnx::NodeProto& n : it->second) *g->add_node() = n;
    }
  }

  google::protobuf::RepeatedPtrField<onnx::TensorProto> inits;
  inits.Swap(g->mutable_initializer());
  for (onnx::TensorProto& t : inits) {
    if (e.drop_initializers.count(t.name()) != 0) continue;
    auto it = e.replace_initializers.find(t.name());
    *g->add_initializer() = it == e.replace_initializers.end() ? std::move(t) : it->second;
  }
  for (const onnx::TensorProto& t : e.add_initializers) *g->add_initializer() = t;

  if (!e.drop_initializers.empty()) {
    google::protobuf::RepeatedPtrField<onnx::ValueInfoProto> inputs;
    inputs.Swap(g->mutable_input());
    for (onnx::ValueInfoProto& v : inputs) {
      if (e.drop_initializers.count(v.name()) == 0) *g->add_input() = std::move(v);
    }
  }

  for (const OnnxOpset& o : e.add_opsets) {
    bool have = false;
    for (const onnx::OperatorSetIdProto& x : model.opset_import()) {
      have = have || x.domain() == o.domain;
    }
    if (have) continue;
    onnx::OperatorSetIdProto* op = model.add_opset_import();
    op->set_domain(o.domain);
    op->set_version(o.version);
  }

  if (model.ByteSizeLong() > static_cast<size_t>(INT_MAX)) {
    fail(m.path(), "the edited model is over protobuf's 2 GB limit");
  }
  std::string out;
  if (!model.SerializeToString(&out)) fail(m.path(), "libonnx cannot serialize the edited model");
  return out;
}

onnx::NodeProto onnx_node(const std::string& name, const std::string& op_type,
                          const std::string& domain, const std::vector<std::string>& inputs,
                          const std::vector<std::string>& outputs,
                          const std::vector<std::pair<std::string, int64_t>>& int_attributes) {
  onnx::NodeProto n;
  for (const std::string& i : inputs) n.add_input(i);
  for (const std::string& o : outputs) n.add_output(o);
  n.set_name(name);
  n.set_op_type(op_type);
  if (!domain.empty()) n.set_domain(domain);
  for (const auto& [k, v] : int_attributes) {
    onnx::AttributeProto* a = n.add_attribute();
    a->set_name(k);
    a->set_type(onnx::AttributeProto_AttributeType_INT);
    a->set_i(v);
  }
  return n;
}

onnx::TensorProto onnx_tensor(const std::string& name, DType dtype,
                              const std::vector<int64_t>& dims, const void* data, size_t nbytes) {
  onnx::TensorProto t;
  for (int64_t d : dims) t.add_dims(d);
  t.set_data_type(onnx_type_of(dtype));
  t.set_name(name);
  t.set_raw_data(data, nbytes);
  return t;
}

}  // namespace lowbit
