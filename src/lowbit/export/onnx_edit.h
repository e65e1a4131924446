// An ONNX model read by io/onnx_model.h, written back with some nodes and initializers replaced:
// the file is parsed into libonnx's onnx::ModelProto (Debian's libonnx-dev), edited there and
// serialized again, so every message and field the edit does not name (metadata, value infos,
// attributes of other nodes, unknown fields) comes back as it was.
#pragma once

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "lowbit/io/onnx_model.h"

namespace lowbit {

// A change to a model's graph.
struct OnnxEdit {
  // node index -> the nodes written in its place (in order; empty = removed).
  std::map<int, std::vector<onnx::NodeProto>> nodes;
  std::set<std::string> drop_initializers;                        // also dropped from graph inputs
  std::map<std::string, onnx::TensorProto> replace_initializers;  // by name
  std::vector<onnx::TensorProto> add_initializers;
  std::vector<OnnxOpset> add_opsets;  // imported unless the domain already is
};

// The serialized model `m` with `e` applied. Throws Error("<m.path()>: ...") when libonnx cannot
// parse what io/onnx_model accepted, or the result passes protobuf's 2 GB limit.
std::string edited_onnx(const OnnxModel& m, const OnnxEdit& e);

// A node with int attributes.
onnx::NodeProto onnx_node(const std::string& name, const std::string& op_type,
                          const std::string& domain, const std::vector<std::string>& inputs,
                          const std::vector<std::string>& outputs,
                          const std::vector<std::pair<std::string, int64_t>>& int_attributes);
// A tensor holding `nbytes` of `data` as raw_data.
onnx::TensorProto onnx_tensor(const std::string& name, DType dtype,
                              const std::vector<int64_t>& dims, const void* data, size_t nbytes);

}  // namespace lowbit
