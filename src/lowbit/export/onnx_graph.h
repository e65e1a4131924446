// A small builder for ONNX graphs (onnx::GraphProto from libonnx's protobuf classes): nodes with
// unique names, float / integer initializers, cached constants, graph inputs and outputs, and
// moving large initializers into an external data file. What the graph computes is the exporter's
// business (export/onnx_export.cpp); this file only spells protobuf.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace onnx {
class GraphProto;
class ModelProto;
}  // namespace onnx

namespace lowbit::onnx_graph {

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

enum class ElemType { kFloat, kUint8, kInt32, kInt64 };

class Builder {
 public:
  explicit Builder(onnx::GraphProto* g) : g_(g) {}

  // Adds a node; returns the names of its `n_out` outputs (named `<hint>_<k>` uniquely).
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

  // Initializers (raw little-endian data); return their names.
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

// Serializes `model` to `path`. Throws Error("<path>: ...") on failure (including protobuf's 2 GB
// limit: use external data).
void write_model(const onnx::ModelProto& model, const std::string& path);

}  // namespace lowbit::onnx_graph
