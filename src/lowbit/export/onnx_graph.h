// Building an ONNX model with libonnx's generated classes (onnx::ModelProto, Debian's libonnx-dev):
// a small builder that adds nodes with unique names, initializers, cached constants and graph
// inputs/outputs to a GraphProto, moves large initializers into an external data file, and writes
// the model. What the graph computes is the exporter's business (export/onnx_export.cpp); this
// file only spells ONNX.
#pragma once

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace lowbit::onnx_graph {

// TensorProto.DataType values.
enum class ElemType : int32_t {
  kFloat = onnx::TensorProto_DataType_FLOAT,
  kUint8 = onnx::TensorProto_DataType_UINT8,
  kInt32 = onnx::TensorProto_DataType_INT32,
  kInt64 = onnx::TensorProto_DataType_INT64,
  kBool = onnx::TensorProto_DataType_BOOL,
};

struct Attr {
  std::string name;
  std::variant<int64_t, float, std::vector<int64_t>, std::string> value;
};

// A dimension of a graph input/output: a fixed size or a symbolic name.
struct Dim {
  int64_t size = -1;
  std::string param;
  Dim(int64_t s) : size(s) {}  // NOLINT: implicit on purpose (shape lists)
  Dim(const char* p) : param(p) {}
};

// A ModelProto with lowbit as producer, the given IR version and opset imports (domain, version).
onnx::ModelProto new_model(const std::string& graph_name, const std::string& producer_version,
                           const std::vector<std::pair<std::string, int64_t>>& opsets,
                           int64_t ir_version = 8);

class Builder {
 public:
  explicit Builder(onnx::GraphProto* g) : g_(g) {}

  // Adds a node; returns the names of its `n_out` outputs (unique, from `hint`).
  std::vector<std::string> node(const std::string& op, const std::vector<std::string>& inputs,
                                int n_out, const std::string& hint,
                                const std::vector<Attr>& attrs = {},
                                const std::string& domain = "");
  // One-output shorthand.
  std::string op(const std::string& op, const std::vector<std::string>& inputs,
                 const std::string& hint, const std::vector<Attr>& attrs = {},
                 const std::string& domain = "") {
    return node(op, inputs, 1, hint, attrs, domain)[0];
  }
  // A node whose single output has a given (graph output) name.
  void op_to(const std::string& op, const std::vector<std::string>& inputs, const std::string& out,
             const std::vector<Attr>& attrs = {});

  // Initializers (copied); return their names.
  std::string init_f32(const std::string& name, const std::vector<int64_t>& dims,
                       const float* data);
  std::string init_u8(const std::string& name, const std::vector<int64_t>& dims,
                      const std::vector<uint8_t>& data);
  std::string init_i64(const std::string& name, const std::vector<int64_t>& dims,
                       const std::vector<int64_t>& data);
  // Cached small constants (one initializer per distinct value).
  std::string const_i64(const std::vector<int64_t>& v);  // 1-D
  std::string scalar_i64(int64_t v);                     // 0-D
  std::string scalar_f32(float v);                       // 0-D

  void input(const std::string& name, ElemType t, const std::vector<Dim>& dims);
  void output(const std::string& name, ElemType t, const std::vector<Dim>& dims);

  uint64_t initializer_bytes() const { return init_bytes_; }

 private:
  std::string add_init(const std::string& name, ElemType t, const std::vector<int64_t>& dims,
                       const void* data, size_t bytes);
  std::string unique(const std::string& hint);
  onnx::GraphProto* g_;
  int64_t counter_ = 0;
  uint64_t init_bytes_ = 0;
  std::vector<std::pair<std::string, std::string>> consts_;  // key -> name
};

// Moves every initializer of at least `min_bytes` into `data_path` (written here; 64-byte aligned
// offsets), referenced by its file name `location` as ONNX external data. Returns the bytes moved.
// Throws Error("<data_path>: ...") when the file cannot be written.
uint64_t move_to_external_data(onnx::ModelProto* model, const std::string& data_path,
                               const std::string& location, uint64_t min_bytes = 1024);

// Writes `model` to `path`. Throws Error("<path>: ...") on failure, including protobuf's 2 GB limit
// on a message (use external data).
void write_model(const onnx::ModelProto& model, const std::string& path);

}  // namespace lowbit::onnx_graph
