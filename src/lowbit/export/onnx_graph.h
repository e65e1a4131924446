// An ONNX model held as plain structs and written in protobuf's wire format (onnx.proto's field
// numbers), with a small builder: nodes with unique names, initializers, cached constants, graph
// inputs and outputs, and moving large initializers into an external data file. What the graph
// computes is the exporter's business (export/onnx_export.cpp); this file only spells ONNX.
//
// Why not libonnx's generated classes: Debian's libsentencepiece.so embeds and exports its own
// protobuf-lite 3.14, so a process that also loads libprotobuf.so (3.21) either crashes in
// libprotobuf's static initialisers (sentencepiece first in the link) or cannot load SentencePiece
// models (libprotobuf first). Writing the few messages ONNX needs takes no runtime at all.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace lowbit::onnx_graph {

// TensorProto.DataType values.
enum class ElemType : int32_t { kFloat = 1, kUint8 = 2, kInt32 = 6, kInt64 = 7, kBool = 9 };

struct Attr {
  std::string name;
  std::variant<int64_t, float, std::vector<int64_t>, std::string> value;
};

struct Node {
  std::string op_type, domain, name;
  std::vector<std::string> inputs, outputs;
  std::vector<Attr> attrs;
};

struct Tensor {
  std::string name;
  ElemType type = ElemType::kFloat;
  std::vector<int64_t> dims;
  std::string raw;  // little-endian data (empty once moved to external data)
  // External data: where the bytes are.
  bool external = false;
  std::string location;
  uint64_t offset = 0, length = 0;
};

// A dimension of a graph input/output: a fixed size or a symbolic name.
struct Dim {
  int64_t size = -1;
  std::string param;
  Dim(int64_t s) : size(s) {}  // NOLINT: implicit on purpose (shape lists)
  Dim(const char* p) : param(p) {}
};

struct ValueInfo {
  std::string name;
  ElemType type = ElemType::kFloat;
  std::vector<Dim> dims;
};

struct Graph {
  std::string name;
  std::vector<Node> nodes;
  std::vector<Tensor> initializers;
  std::vector<ValueInfo> inputs, outputs;
};

struct Model {
  int64_t ir_version = 8;
  std::string producer_name = "lowbit", producer_version;
  std::vector<std::pair<std::string, int64_t>> opsets;  // (domain, version)
  Graph graph;
};

class Builder {
 public:
  explicit Builder(Graph* g) : g_(g) {}

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
  Graph* g_;
  int64_t counter_ = 0;
  uint64_t init_bytes_ = 0;
  std::vector<std::pair<std::string, std::string>> consts_;  // key -> name
};

// Moves every initializer of at least `min_bytes` into `data_path` (written here; 64-byte aligned
// offsets), referenced by its file name `location` as ONNX external data. Returns the bytes moved.
// Throws Error("<data_path>: ...") when the file cannot be written.
uint64_t move_to_external_data(Model* model, const std::string& data_path,
                               const std::string& location, uint64_t min_bytes = 1024);

// The serialized size of `model`'s ModelProto.
uint64_t serialized_size(const Model& model);

// Writes `model` as a ModelProto to `path`. Throws Error("<path>: ...") on failure, including
// protobuf's 2 GB limit on a message (use external data).
void write_model(const Model& model, const std::string& path);

}  // namespace lowbit::onnx_graph
